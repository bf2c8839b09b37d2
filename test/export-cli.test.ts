import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';

async function run(argv: string[], cwd: string) {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), cwd, isTty: false });
  return { code, stdout, stderr };
}

function workspace(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'quantc-cli-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

const GOOD = 'quant_stage:\n  quant_modifiers:\n    GPTQModifier: {targets: Linear, scheme: W4A16, ignore: [lm_head]}\n';
const WARN = `${GOOD}notes: hello\n`;
const BAD = 'quant_stage:\n  quant_modifiers:\n    GPTQModifier: {scheme: W4A17}\n';

describe('quantc check', () => {
  it('hints at the .qr extension when a DSL recipe has another extension', async () => {
    const dsl = '# a recipe\nrecipe "x" version "1"\nstage q {\n  QuantizationModifier {\n    targets = [Linear]\n    scheme = W4A16\n  }\n}\n';
    const dir = workspace({ recipe: dsl, 'recipe.txt': dsl, 'other.txt': 'just: text\n' });
    for (const file of ['recipe', 'recipe.txt']) {
      const r = await run(['check', file], dir);
      expect(r.code).toBe(1);
      expect(r.stdout + r.stderr).toContain('note: This looks like a quantc DSL recipe; quantc reads the DSL only from files ending in ".qr".');
    }
    const other = await run(['check', 'other.txt'], dir);
    expect(other.stdout + other.stderr).not.toContain('.qr');
  });

  const dir = workspace({ 'good.yaml': GOOD, 'warn.yaml': WARN, 'bad.yaml': BAD, 'empty.yaml': '' });

  it('exits 0 on a clean recipe and on warnings only', async () => {
    expect(await run(['check', 'good.yaml'], dir)).toEqual({ code: 0, stdout: '', stderr: '' });
    const warn = await run(['check', 'warn.yaml'], dir);
    expect(warn.code).toBe(0);
    expect(warn.stdout).toContain('warn.yaml:4:1: warning top-level-key-ignored:');
  });

  it('exits 1 on errors, with a code frame', async () => {
    const bad = await run(['check', 'good.yaml', 'bad.yaml'], dir);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain('bad.yaml:3:28: error unknown-preset: Unknown preset scheme name "W4A17".');
    expect(bad.stdout).toContain('3 |     GPTQModifier: {scheme: W4A17}');
  });

  it('exits 2 on unreadable input and bad usage, with one line on stderr', async () => {
    const missing = await run(['check', 'nope.yaml'], dir);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe('quantc: Cannot read "nope.yaml": it does not exist.\n');
    expect((await run(['check', 'empty.yaml'], dir)).code).toBe(2);
    expect(await run(['check'], dir)).toMatchObject({ code: 2, stderr: 'quantc: check: no recipe file given. See "quantc check --help".\n' });
    expect((await run(['check', '--format', 'xml', 'good.yaml'], dir)).code).toBe(2);
  });

  it('prints JSON diagnostics with --format json', async () => {
    const out = await run(['check', '--format', 'json', 'bad.yaml'], dir);
    expect(out.code).toBe(1);
    const json = JSON.parse(out.stdout);
    expect(json.files[0].diagnostics[0]).toMatchObject({ code: 'unknown-preset', severity: 'error', span: { file: 'bad.yaml', start: { line: 3, column: 28 } } });
  });

  it('has --help', async () => {
    const help = await run(['check', '--help'], dir);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: quantc check FILE/);
  });
});

describe('quantc export', () => {
  it('writes llm-compressor YAML with defaults materialized', async () => {
    const dir = workspace({ 'r.yaml': GOOD });
    const out = await run(['export', 'r.yaml', '--to', 'yaml'], dir);
    expect(out.code).toBe(0);
    expect(out.stdout).toBe(
      'quant_stage:\n  quant_modifiers:\n    GPTQModifier:\n      targets: [Linear]\n      ignore: [lm_head]\n      scheme: W4A16\n' +
        '      bypass_divisibility_checks: false\n      requires_calibration_data: true\n      block_size: 128\n      dampening_frac: 0.01\n' +
        '      actorder: static\n      offload_hessians: false\n',
    );
  });

  it('writes --out through a temporary file and never over the input', async () => {
    const dir = workspace({ 'r.yaml': GOOD });
    expect((await run(['export', 'r.yaml', '--to', 'json', '--out', 'ir.json'], dir)).code).toBe(0);
    expect(JSON.parse(readFileSync(join(dir, 'ir.json'), 'utf8')).modifiers[0].type).toBe('GPTQModifier');
    expect(readdirSync(dir).sort()).toEqual(['ir.json', 'r.yaml']);
    const clobber = await run(['export', 'r.yaml', '--to', 'yaml', '--out', 'r.yaml'], dir);
    expect(clobber.code).toBe(2);
    expect(readFileSync(join(dir, 'r.yaml'), 'utf8')).toBe(GOOD);
  });

  it('never writes --out over a file the recipe imports', async () => {
    const shared = 'let ig = ["lm_head"]\n';
    const main = 'recipe "a" version "1"\nimport "shared.qr"\nstage q {\n  QuantizationModifier {\n    targets = [Linear]\n    scheme = W4A16\n    ignore = ig\n  }\n}\n';
    const dir = workspace({ 'main.qr': main, 'shared.qr': shared });
    const clobber = await run(['export', 'main.qr', '--to', 'dsl', '--out', 'shared.qr'], dir);
    expect(clobber.code).toBe(2);
    expect(clobber.stderr).toBe(`quantc: cannot write "${join(dir, 'shared.qr')}": it is an input file.\n`);
    expect(readFileSync(join(dir, 'shared.qr'), 'utf8')).toBe(shared);
  });

  it('refuses recipes with errors and bad usage', async () => {
    const dir = workspace({ 'bad.yaml': BAD, 'r.yaml': GOOD });
    const bad = await run(['export', 'bad.yaml', '--to', 'yaml'], dir);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toContain('error unknown-preset');
    expect((await run(['export', 'r.yaml'], dir)).code).toBe(2);
    expect((await run(['export', 'r.yaml', '--to', 'toml'], dir)).code).toBe(2);
    expect((await run(['export', '--help'], dir)).code).toBe(0);
  });
});
