import { mkdir, mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { OutputExistsError, stageOutputDir } from '../../src/execute/output-dir.js';

test('a run never replaces an output another run into the same --out finished first', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'quantc-out-'));
  const dest = join(dir, 'out');
  const stage = await stageOutputDir(dest);
  await writeFile(join(stage.path, 'model.safetensors'), 'mine');
  // The other run commits first.
  await mkdir(dest);
  await writeFile(join(dest, 'model.safetensors'), 'theirs');
  await expect(stage.commit()).rejects.toBeInstanceOf(OutputExistsError);
  await stage.discard();
  expect(await readdir(dir)).toEqual(['out']);
  expect(await readdir(dest)).toEqual(['model.safetensors']);
});
