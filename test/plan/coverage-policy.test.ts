/**
 * The plan states the expert coverage policy where it describes calibration
 * of an MoE model: `moe.coverage` in the JSON, one line under the calibrate
 * step in text and Markdown; a data-free recipe has neither.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { coveragePolicyText } from '../../src/report/plan-text.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CASE = 'test/cases/plan-moe-coverage';
const MODEL = 'test/cases/plan-moe/acme-tree.json';

async function plan(recipe: string, format: string): Promise<string> {
  let stdout = '';
  const code = await main(['plan', `${CASE}/${recipe}`, '--model', MODEL, '--format', format], { stdout: (t) => (stdout += t), stderr: () => {}, cwd: ROOT, isTty: false });
  expect(code).toBe(0);
  return stdout;
}

describe('expert coverage policy in the plan', () => {
  it('words every policy, and a threshold of 1 as "no calibration token"', () => {
    expect(coveragePolicyText({ minExpertTokens: 64, onLowCoverage: 'fallback' })).toBe('experts seeing < 64 calibration tokens: fallback to data-free weight quantization');
    expect(coveragePolicyText({ minExpertTokens: 1, onLowCoverage: 'error' })).toBe('experts that see no calibration token: error, apply stops before writing anything');
    expect(coveragePolicyText({ minExpertTokens: 2048, onLowCoverage: 'warning' })).toBe(
      'experts seeing < 2,048 calibration tokens: warning, they keep the statistics they have (one that saw none falls back to data-free weight quantization)',
    );
    expect(coveragePolicyText({ minExpertTokens: 1, onLowCoverage: 'warning' })).toBe('experts that see no calibration token: warning, and they fall back to data-free weight quantization');
  });

  it('records the policy in the JSON and states it under the calibrate step', async () => {
    for (const policy of ['fallback', 'warning'] as const) {
      const json = JSON.parse(await plan(`${policy}.qr`, 'json'));
      expect(json.formatVersion).toBe(1);
      expect(json.moe.coverage).toEqual({ minExpertTokens: 64, onLowCoverage: policy });
      const line = coveragePolicyText(json.moe.coverage);
      const text = (await plan(`${policy}.qr`, 'text')).split('\n');
      const calibrate = text.findIndex((l) => /^\s+\d+\. \* calibrate/.test(l));
      expect(text.slice(calibrate, calibrate + 4).map((l) => l.trim())).toContain(line);
      expect(text.filter((l) => l.includes(line))).toHaveLength(1);
      expect(await plan(`${policy}.qr`, 'markdown')).toMatch(new RegExp(`\\| calibrate \\| [^\\n]*experts see only routed tokens<br>experts seeing \\\\< 64 calibration tokens: ${policy}`));
    }
  });

  it('leaves it out when nothing calibrates', async () => {
    const json = JSON.parse(await plan('data-free.qr', 'json'));
    expect(json.summary.requiresCalibrationData).toBe(false);
    expect(json.moe.coverage).toBeUndefined();
    expect(await plan('data-free.qr', 'text')).not.toMatch(/calibration tokens?:/);
  });
});
