/**
 * A full disk while `merge` writes the checkpoint: one diagnostic with a
 * code, exit 1, and no output or temporary folder left behind. The failure
 * is injected into the safetensors writer's file writes once the parts exist.
 */
import { mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test, vi } from 'vitest';

const disk = { full: false };

vi.mock('node:fs/promises', async (importOriginal) => {
  const { fillingDisk } = await import('./full-disk.js');
  return fillingDisk(await importOriginal<typeof import('node:fs/promises')>(), () => disk.full);
});

test('a full disk while merging is a diagnostic, and nothing is left in the output folder', async () => {
  const { main } = await import('../../src/cli/main.js');
  const { memoryIo } = await import('../memory-io.js');
  const { DATAFREE, unpackModel } = await import('./fixtures.js');
  const modelDir = await unpackModel(join(DATAFREE, 'llama', 'base'));
  const cwd = await mkdtemp(join(tmpdir(), 'quantc-merge-full-'));
  await writeFile(join(cwd, 'r.yaml'), 'quant_stage:\n  quant_modifiers:\n    QuantizationModifier:\n      targets: [Linear]\n      scheme: W4A16\n      ignore: [lm_head]\n');
  for (const i of [0, 1]) expect(await main(['apply', 'r.yaml', '--model', modelDir, '--out', `part${i}`, '--shard', `${i}/2`, '--quiet'], memoryIo(cwd))).toBe(0);
  disk.full = true;
  const io = memoryIo(cwd);
  expect(await main(['merge', 'part0', 'part1', '--out', 'out'], io)).toBe(1);
  expect(io.err.join('')).toMatch(/^error merge-failed: writing .*out failed: the disk is full \(ENOSPC: no space left on device, write\); nothing was written\n/);
  expect((await readdir(cwd)).sort()).toEqual(['part0', 'part1', 'r.yaml']);
});
