import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import type { CliIo } from '../src/cli/io.js';

function run(argv: string[], cwd: string) {
  let stdout = '';
  let stderr = '';
  const io: CliIo = { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), cwd, isTty: false };
  return main(argv, io).then((code) => ({ code, stdout, stderr }));
}

const MESSY = 'recipe "x" version "1"\nstage quant { QuantizationModifier { targets = [Linear]   # classes\n scheme = W4A16 } }\n';

describe('quantc fmt (CLI)', () => {
  it('prints the formatted text by default and leaves the file alone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'quantc-fmt-'));
    writeFileSync(join(dir, 'r.qr'), MESSY);
    const r = await run(['fmt', 'r.qr'], dir);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('    targets = [Linear]  # classes\n');
    expect(readFileSync(join(dir, 'r.qr'), 'utf8')).toBe(MESSY);
  });

  it('--check exits 1 naming the file, --write fixes it, then --check passes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'quantc-fmt-'));
    writeFileSync(join(dir, 'r.qr'), MESSY);
    const before = await run(['fmt', 'r.qr', '--check'], dir);
    expect(before.code).toBe(1);
    expect(before.stderr).toContain('r.qr is not formatted');
    expect((await run(['fmt', 'r.qr', '--write'], dir)).code).toBe(0);
    expect(readdirSync(dir)).toEqual(['r.qr']);
    expect((await run(['fmt', 'r.qr', '--check'], dir)).code).toBe(0);
  });

  it('reports syntax errors with exit 1 and bad usage with exit 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'quantc-fmt-'));
    writeFileSync(join(dir, 'bad.qr'), 'stage {\n');
    const bad = await run(['fmt', 'bad.qr'], dir);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('syntax-error');
    expect((await run(['fmt', 'missing.qr'], dir)).code).toBe(2);
    expect((await run(['fmt', 'bad.qr', '--write', '--check'], dir)).code).toBe(2);
    expect((await run(['fmt', '--help'], dir)).stdout).toContain('Usage: quantc fmt');
  });
});
