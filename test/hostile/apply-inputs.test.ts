/**
 * Hostile inputs to `quantc apply`, as a user meets them: broken
 * checkpoints, broken calibration data, awkward paths. Each case asserts
 * the exit code (1 bad model or data, 2 bad usage or unreadable input), the
 * diagnostic, and that nothing is left behind where the output would go.
 */
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { main } from '../../src/cli/main.js';
import { CALIBRATION, modelWithTokenizer } from '../calibrate-refs.js';
import { parseSafetensors, serializeSafetensors } from '../execute/fixtures.js';
import { memoryIo } from '../memory-io.js';

const GPTQ = 'quant_stage:\n  quant_modifiers:\n    GPTQModifier: {targets: [Linear], scheme: W4A16, ignore: [lm_head]}\n';

/** Rewrites a model folder's model.safetensors with `edit` applied to its header and tensors. */
async function rewrite(dir: string, edit: (tensors: Map<string, { dtype: string; shape: number[]; bytes: Uint8Array }>) => void): Promise<void> {
  const file = join(dir, 'model.safetensors');
  const tensors = parseSafetensors(new Uint8Array(await readFile(file))) as Map<string, { dtype: string; shape: number[]; bytes: Uint8Array }>;
  edit(tensors);
  await writeFile(file, serializeSafetensors(tensors));
}

interface Case {
  readonly name: string;
  /** Prepares the model folder and the working folder; returns extra apply arguments. */
  readonly setup: (model: string, cwd: string) => Promise<string[]>;
  readonly exit: 1 | 2;
  readonly message: RegExp;
}

const CASES: readonly Case[] = [
  {
    name: 'a shard cut in half',
    setup: async (model) => {
      const file = join(model, 'model.safetensors');
      const bytes = await readFile(file);
      await writeFile(file, bytes.subarray(0, bytes.length >> 1));
      return [];
    },
    exit: 1,
    message: /error safetensors-invalid-header: .* its tensors end at byte \d+ but the file has \d+ bytes \(truncated\?\)/,
  },
  {
    name: 'a header that is not JSON',
    setup: async (model) => {
      const file = join(model, 'model.safetensors');
      const bytes = Buffer.from(await readFile(file));
      bytes.write('#', 8);
      await writeFile(file, bytes);
      return [];
    },
    exit: 1,
    message: /error safetensors-invalid-header: .* its header is not JSON/,
  },
  {
    name: 'a shard the index lists but the folder lacks',
    setup: async (model) => {
      const { rename } = await import('node:fs/promises');
      await rename(join(model, 'model.safetensors'), join(model, 'model-00001-of-00002.safetensors'));
      const map = { 'model.embed_tokens.weight': 'model-00001-of-00002.safetensors', 'lm_head.weight': 'model-00002-of-00002.safetensors' };
      await writeFile(join(model, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: map }));
      return [];
    },
    exit: 1,
    message: /error [a-z-]+: .*model-00002-of-00002\.safetensors/,
  },
  {
    name: 'a tensor missing from the checkpoint',
    setup: async (model) => {
      await rewrite(model, (t) => void t.delete('model.layers.1.mlp.down_proj.weight'));
      return [];
    },
    exit: 1,
    message: /error [a-z-]+: .*model\.layers\.1\.mlp\.down_proj/,
  },
  {
    name: 'a Linear weight stored as int32',
    setup: async (model) => {
      await rewrite(model, (t) => {
        const w = t.get('model.layers.0.self_attn.q_proj.weight')!;
        t.set('model.layers.0.self_attn.q_proj.weight', { ...w, dtype: 'I32', shape: [w.shape[0]!, w.shape[1]! / 2] });
      });
      return [];
    },
    exit: 1,
    message: /error [a-z-]+: .*q_proj/,
  },
  {
    name: 'a NaN in a weight',
    setup: async (model) => {
      await rewrite(model, (t) => {
        const w = t.get('model.layers.0.mlp.up_proj.weight')!;
        const bytes = Uint8Array.from(w.bytes);
        bytes[1] = 0x7f;
        bytes[0] = 0xc0;
        t.set('model.layers.0.mlp.up_proj.weight', { ...w, bytes });
      });
      return [];
    },
    exit: 1,
    message: /error apply-failed: model\.layers\.0\.mlp\.up_proj: the weight holds non-finite values/,
  },
  {
    name: 'an empty data file',
    setup: async (_model, cwd) => {
      await writeFile(join(cwd, 'empty.txt'), '');
      return ['--data', 'empty.txt'];
    },
    exit: 1,
    message: /error apply-data-too-short:/,
  },
  {
    name: 'a binary data file',
    setup: async (_model, cwd) => {
      await writeFile(join(cwd, 'blob.txt'), Buffer.from([0, 1, 2, 0, 255]));
      return ['--data', 'blob.txt'];
    },
    exit: 2,
    message: /^quantc: apply: --data: .*blob\.txt is not a text file/,
  },
  {
    name: 'a JSON Lines record without text',
    setup: async (_model, cwd) => {
      await writeFile(join(cwd, 'data.jsonl'), '{"text": 1}\n');
      return ['--data', 'data.jsonl'];
    },
    exit: 2,
    message: /^quantc: apply: --data: .*data\.jsonl:1: a record needs a "text" string, "messages", or "prompt" and "completion"/,
  },
  {
    name: 'a folder that is not a saved dataset given as data',
    setup: async (_model, cwd) => {
      await mkdir(join(cwd, 'data'));
      return ['--data', 'data'];
    },
    exit: 2,
    message: /^quantc: apply: --data: .*data is a folder without data-\*\.arrow files; pass a file, or a folder written by datasets' save_to_disk/,
  },
];

describe('apply on hostile inputs', () => {
  for (const c of CASES) {
    test(c.name, async () => {
      const model = await modelWithTokenizer('llama');
      const cwd = await mkdtemp(join(tmpdir(), 'quantc-hostile-'));
      await writeFile(join(cwd, 'recipe.yaml'), GPTQ);
      const extra = await c.setup(model, cwd);
      const before = (await readdir(cwd)).sort();
      const io = memoryIo(cwd);
      const args = extra.includes('--data') ? extra : ['--data', join(CALIBRATION, 'text.txt'), ...extra];
      const code = await main(['apply', 'recipe.yaml', '--model', model, '--out', 'out', '--seq-len', '32', '-q', ...args], io);
      expect(io.err.join(''), io.err.join('')).toMatch(c.message);
      expect(code).toBe(c.exit);
      expect((await readdir(cwd)).sort()).toEqual(before);
    });
  }

  test('an --out under a file, a --coverage in a missing folder, and an --out that exists are usage errors before any work', async () => {
    const model = await modelWithTokenizer('llama');
    const cwd = await mkdtemp(join(tmpdir(), 'quantc-hostile-'));
    await writeFile(join(cwd, 'recipe.yaml'), GPTQ);
    await writeFile(join(cwd, 'file'), 'x');
    await mkdir(join(cwd, 'taken'));
    for (const [args, message] of [
      [['--out', 'file/out'], /is a file, not a folder/],
      [['--out', 'out', '--coverage', 'missing/c.json'], /--coverage: the folder .*missing does not exist/],
      [['--out', 'taken'], /taken already exists; choose a new --out folder/],
    ] as const) {
      const io = memoryIo(cwd);
      expect(await main(['apply', 'recipe.yaml', '--model', model, ...args], io)).toBe(2);
      expect(io.err.join('')).toMatch(message);
    }
    expect((await readdir(cwd)).sort()).toEqual(['file', 'recipe.yaml', 'taken']);
  });
});
