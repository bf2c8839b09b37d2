/**
 * `apply --shard I/N` + `merge`: N parts run as separate processes of the
 * built executable give, once merged, the checkpoint of a single run byte
 * for byte; merging refuses incomplete, duplicated and mixed parts.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { assignParts, parsePartSpec } from '../../src/execute/parts.js';
import { DATAFREE, unpackModel } from './fixtures.js';
import pkg from '../../package.json' with { type: 'json' };

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = `${ROOT}${pkg.bin.quantc}`;

function quantcAsync(cwd: string, args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const p = spawn(BIN, args, { cwd });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('close', (code) => done({ code, stdout, stderr }));
  });
}

function quantc(cwd: string, args: readonly string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(BIN, args, { cwd, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Every file of a folder (recursively) by relative path. */
async function filesOf(dir: string, prefix = ''): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const ent of await readdir(join(dir, prefix), { withFileTypes: true })) {
    const rel = join(prefix, ent.name);
    if (ent.isDirectory()) for (const [k, v] of await filesOf(dir, rel)) out.set(k, v);
    else out.set(rel, await readFile(join(dir, rel)));
  }
  return out;
}

describe('assignParts', () => {
  test('gives every item one part, in contiguous runs, each part within one item of an equal share', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: 1, maxLength: 60 }), fc.integer({ min: 1, max: 9 }), (costs, n) => {
        const parts = assignParts(costs, n);
        expect(parts).toHaveLength(costs.length);
        for (let i = 1; i < parts.length; i++) expect(parts[i]!).toBeGreaterThanOrEqual(parts[i - 1]!);
        const total = costs.reduce((a, b) => a + b, 0);
        const biggest = Math.max(...costs);
        for (let p = 0; p < n; p++) {
          const share = costs.reduce((a, c, i) => a + (parts[i] === p ? c : 0), 0);
          expect(share).toBeLessThanOrEqual(total / n + biggest);
        }
      }),
    );
  });

  test('reads I/N', () => {
    expect(parsePartSpec('2/4')).toEqual({ index: 2, count: 4 });
    expect(parsePartSpec('0/1')).toEqual({ index: 0, count: 1 });
    for (const bad of ['4/4', '1', '-1/2', '1/0', 'a/b', '1/2/3']) expect(parsePartSpec(bad)).toBeNull();
  });
});

describe('apply --shard I/N and merge (the built executable, `npm test` builds it)', () => {
  let cwd: string;
  let model: string;
  const recipe = 'w4a16.yaml';
  const yaml = (scheme: string): string => `quant_stage:\n  quant_modifiers:\n    QuantizationModifier:\n      targets: [Linear]\n      scheme: ${scheme}\n      ignore: [lm_head]\n`;
  // Small shards, so that the merged checkpoint has several files and an index.
  const common = ['--max-shard-size', '0.0002', '--quiet'];

  beforeAll(async () => {
    cwd = await mkdtemp(join(tmpdir(), 'quantc-parts-'));
    model = await unpackModel(join(DATAFREE, 'qwen3_moe', 'base'));
    await writeFile(join(cwd, recipe), yaml('W4A16'));
    await writeFile(join(cwd, 'nvfp4.yaml'), yaml('NVFP4A16'));
    await writeFile(join(cwd, 'fp8.yaml'), yaml('FP8'));
    await writeFile(join(model, 'tokenizer_config.json'), '{"model_max_length": 64}\n');
    const runs = await Promise.all([
      quantcAsync(cwd, ['apply', recipe, '--model', model, '--out', 'single', ...common]),
      ...[0, 1, 2].map((i) => quantcAsync(cwd, ['apply', recipe, '--model', model, '--out', `part${i}`, '--shard', `${i}/3`, ...common])),
    ]);
    for (const r of runs) expect(r.stderr).toBe('');
    for (const r of runs) expect(r.code).toBe(0);
  }, 120_000);

  test('three parts in three processes merge into the single run, byte for byte', async () => {
    const r = quantc(cwd, ['merge', 'part2', 'part0', 'part1', '--out', 'merged']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Wrote merged in [\d.]+ s: \d+ tensors from 3 parts into \d+ shards/);
    const single = await filesOf(join(cwd, 'single'));
    const merged = await filesOf(join(cwd, 'merged'));
    expect(single.has('model.safetensors.index.json')).toBe(true);
    expect(single.has('tokenizer_config.json')).toBe(true);
    expect([...merged.keys()].sort()).toEqual([...single.keys()].sort());
    for (const [name, bytes] of single) expect(Buffer.compare(merged.get(name)!, bytes), name).toBe(0);
  });

  test('every part does a share of the work, and only part 0 carries config.json', async () => {
    for (const i of [0, 1, 2]) {
      const files = (await readdir(join(cwd, `part${i}`))).sort();
      expect(files).toEqual(i === 0 ? ['config.json', 'generation_config.json', 'part.safetensors', 'quantc-part.json', 'recipe.yaml', 'tokenizer_config.json'] : ['part.safetensors', 'quantc-part.json']);
      const manifest = JSON.parse(await readFile(join(cwd, `part${i}`, 'quantc-part.json'), 'utf8')) as { owned: string[] };
      expect(manifest.owned.length).toBeGreaterThan(3);
    }
  });

  test('a missing or repeated part stops the merge (exit 1), and nothing is written', () => {
    const missing = quantc(cwd, ['merge', 'part0', 'part2', '--out', 'm1']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe('error merge-incomplete: part 1/3 missing; every part of the run is needed\n\n1 error, 0 warnings\n');
    const twice = quantc(cwd, ['merge', 'part0', 'part1', 'part1', 'part2', '--out', 'm2']);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toMatch(/^error merge-incomplete: part 1\/3 is given twice: .*part1 and .*part1\n\n1 error, 0 warnings\n$/);
    expect(spawnSync('ls', [join(cwd, 'm1'), join(cwd, 'm2')]).status).not.toBe(0);
  });

  test('parts of different runs are not mixed (exit 1)', async () => {
    const r = quantc(cwd, ['apply', 'nvfp4.yaml', '--model', model, '--out', 'other1', '--shard', '1/3', ...common]);
    expect(r.code).toBe(0);
    const mixed = quantc(cwd, ['merge', 'part0', 'other1', 'part2', '--out', 'm3']);
    expect(mixed.code).toBe(1);
    expect(mixed.stderr).toMatch(/^error merge-mismatch: .*other1 is part 1\/3 of a different run than .*part0 \(recipe, model, options or quantc version differ\)\n\n1 error, 0 warnings\n$/);
  });

  test('a damaged part is found before anything is written', async () => {
    await cp(join(cwd, 'part1'), join(cwd, 'cut1'), { recursive: true });
    const manifest = JSON.parse(await readFile(join(cwd, 'cut1', 'quantc-part.json'), 'utf8')) as { owned: string[] };
    await writeFile(join(cwd, 'cut1', 'quantc-part.json'), JSON.stringify({ ...manifest, owned: manifest.owned.slice(1) }));
    const r = quantc(cwd, ['merge', 'part0', 'cut1', 'part2', '--out', 'm4']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`error merge-incomplete: no part wrote ${manifest.owned[0]}\n\n1 error, 0 warnings\n`);
    await rm(join(cwd, 'cut1', 'part.safetensors'));
    await writeFile(join(cwd, 'cut1', 'quantc-part.json'), JSON.stringify(manifest));
    const gone = quantc(cwd, ['merge', 'part0', 'cut1', 'part2', '--out', 'm5']);
    expect(gone.code).toBe(2);
    expect(gone.stderr).toMatch(/^quantc: merge: .*cut1\/part\.safetensors cannot be read \(ENOENT\)\n$/);
  });

  test('bad usage: a folder that is no part, a malformed --shard, a calibrated recipe', async () => {
    const notPart = quantc(cwd, ['merge', 'single', '--out', 'm6']);
    expect(notPart.code).toBe(2);
    expect(notPart.stderr).toMatch(/^quantc: merge: .*single is not a part folder written by `quantc apply --shard` \(no quantc-part\.json\)\n$/);
    const bad = quantc(cwd, ['apply', recipe, '--model', model, '--out', 'x', '--shard', '3/3']);
    expect(bad).toMatchObject({ code: 2, stderr: 'quantc: apply: --shard must be I/N with 0 <= I < N, e.g. --shard 0/4.\n' });
    const calibrated = quantc(cwd, ['apply', 'fp8.yaml', '--model', model, '--out', 'y', '--shard', '0/2']);
    expect(calibrated.code).toBe(1);
    expect(calibrated.stderr).toContain('error apply-shard-calibrated: --shard splits data-free weight passes only; this recipe needs calibration');
  });
});
