import { chmodSync, lstatSync, mkdtempSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
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
    writeFileSync(join(dir, 'UPPER.QR'), MESSY);
    expect((await run(['fmt', 'UPPER.QR'], dir)).stdout).toContain('    targets = [Linear]  # classes\n');
    expect((await run(['fmt', 'bad.qr', '--write', '--check'], dir)).code).toBe(2);
    expect((await run(['fmt', '--help'], dir)).stdout).toContain('Usage: quantc fmt');
  });

  it('--write follows a symlink, keeps the file mode, and refuses a read-only file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'quantc-fmt-'));
    writeFileSync(join(dir, 'r.qr'), MESSY);
    chmodSync(join(dir, 'r.qr'), 0o640);
    symlinkSync('r.qr', join(dir, 'link.qr'));
    expect((await run(['fmt', 'link.qr', '--write'], dir)).code).toBe(0);
    expect(lstatSync(join(dir, 'link.qr')).isSymbolicLink()).toBe(true);
    expect(statSync(join(dir, 'r.qr')).mode & 0o777).toBe(0o640);
    expect((await run(['fmt', 'r.qr', '--check'], dir)).code).toBe(0);
    writeFileSync(join(dir, 'ro.qr'), MESSY);
    chmodSync(join(dir, 'ro.qr'), 0o444);
    const ro = await run(['fmt', 'ro.qr', '--write'], dir);
    expect(ro).toEqual({ code: 2, stdout: '', stderr: `quantc: cannot write "${join(dir, 'ro.qr')}": it is read-only.\n` });
    expect(readFileSync(join(dir, 'ro.qr'), 'utf8')).toBe(MESSY);
    expect(readdirSync(dir).sort()).toEqual(['link.qr', 'r.qr', 'ro.qr']);
  });
});
