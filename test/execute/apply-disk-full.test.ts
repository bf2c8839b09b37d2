/**
 * A full disk in the middle of the weight pass: one diagnostic with a
 * code, exit 1, and no output folder or temporary folder left behind. The
 * failure is injected into the safetensors writer's file writes.
 */
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test, vi } from 'vitest';

vi.mock('node:fs/promises', async (importOriginal) => {
  const { fillingDisk } = await import('./full-disk.js');
  return fillingDisk(await importOriginal<typeof import('node:fs/promises')>(), () => true);
});

test('a full disk during the weight pass is a diagnostic, and nothing is left in the output folder', async () => {
  const { main } = await import('../../src/cli/main.js');
  const { memoryIo } = await import('../memory-io.js');
  const { DATAFREE, unpackModel } = await import('./fixtures.js');
  const modelDir = await unpackModel(join(DATAFREE, 'llama', 'base'));
  const cwd = await mkdtemp(join(tmpdir(), 'quantc-full-'));
  const io = memoryIo(cwd);
  expect(await main(['apply', join(DATAFREE, 'llama', 'W8A8', 'recipe.yaml'), '--model', modelDir, '--out', 'out'], io)).toBe(1);
  expect(io.err.join('')).toMatch(/error apply-failed: writing .*out failed: the disk is full \(ENOSPC: no space left on device, write\); nothing was written/);
  expect(await readdir(cwd)).toEqual([]);
});
