/**
 * The built executable (the launcher and the bundles `npm run build`
 * writes), run as a user runs it: a fresh process, real exit codes,
 * one-line errors.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { QUANTC_VERSION } from '../src/version.js';
import pkg from '../package.json' with { type: 'json' };

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const BIN = `${ROOT}${pkg.bin.quantc}`;

function quantc(...args: string[]) {
  const r = spawnSync(BIN, args, { cwd: ROOT, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('the quantc executable (run `npm run build` first; `npm test` does)', () => {
  it('prints its version, which matches package.json', () => {
    expect(QUANTC_VERSION).toBe(pkg.version);
    expect(quantc('--version')).toEqual({ code: 0, stdout: `${pkg.version}\n`, stderr: '' });
  });

  it('checks a built-in recipe', () => {
    expect(quantc('check', 'recipes/glm-4.7-flash-nvfp4.qr')).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it('plans the README main command offline', () => {
    const r = quantc('plan', 'recipes/glm-4.7-flash-nvfp4.qr', '--model', 'zai-org/GLM-4.7-Flash');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('46 Glm4MoeLiteMoE modules get calibration rewrite');
  });

  it('answers bad usage with one line and exit 2', () => {
    const r = quantc('plan', '--nope');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^quantc: [^\n]+\n$/);
    const unknown = quantc('frobnicate');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toBe('quantc: unknown command "frobnicate". Run "quantc --help" for the list.\n');
    expect(quantc('plna').stderr).toBe('quantc: unknown command "plna". Did you mean "plan"? Run "quantc --help" for the list.\n');
    expect(quantc('plan', 'r.qr', '--modle', 'x').stderr).toBe('quantc: plan: Unknown option \'--modle\'. Did you mean "--model"? See "quantc plan --help".\n');
  });

  it('every command answers --help', () => {
    for (const command of ['check', 'fmt', 'export', 'plan', 'explain', 'diff', 'modules', 'match', 'apply']) {
      const r = quantc(command, '--help');
      expect(r.code, command).toBe(0);
      expect(r.stdout, command).toMatch(/^Usage: quantc /);
    }
  });
});
