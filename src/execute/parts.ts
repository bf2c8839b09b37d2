/**
 * Checkpoint parts: `apply --shard I/N` writes the share of a data-free
 * weight pass that part I of N owns, and {@link mergeParts} assembles the
 * parts into the checkpoint one run would have written, byte for byte.
 *
 * Every part computes the whole output layout (from safetensors headers
 * only, milliseconds) and owns a contiguous run of it, balanced by the
 * bytes each tensor costs to read, so the parts need no coordination: a
 * Kubernetes Indexed Job or a Slurm array runs them as independent tasks.
 * Each part folder holds its tensors in one safetensors file and a manifest
 * with the full layout; part 0 also holds config.json, recipe.yaml and the
 * model's other files.
 */
import { createHash } from 'node:crypto';
import { cp, copyFile, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stageOutputDir, writeFailure } from './output-dir.js';
import { CheckpointError, readSafetensorsHeader, readTensorChunks, type TensorEntry } from './safetensors-reader.js';
import { layoutShards, shardIndexJson, type OutputTensorSpec, type ShardLayout } from './safetensors-writer.js';
import { ShardedWriter } from './sharded-writer.js';

/** Which share of the work a run owns: part `index` (0-based) of `count`. */
export interface PartSpec {
  readonly index: number;
  readonly count: number;
}

/** The manifest file of a part folder. */
export const PART_MANIFEST = 'quantc-part.json';
/** The tensors file of a part folder. */
export const PART_TENSORS = 'part.safetensors';
const FORMAT_VERSION = 1;

/** What a part folder says about itself. */
export interface PartManifest {
  readonly formatVersion: number;
  readonly quantc: string;
  readonly part: PartSpec;
  /** Digest of everything the parts of one run must share (layout, config.json, recipe). */
  readonly runDigest: string;
  readonly maxShardBytes: number;
  /** The whole output, in write order (identical in every part). */
  readonly tensors: readonly OutputTensorSpec[];
  /** Names of the tensors this part wrote, in write order. */
  readonly owned: readonly string[];
}

/**
 * Why parts cannot be merged (the message is user-facing): a folder that is
 * not a readable part, parts of different runs, a run with parts or
 * tensors missing or given twice, or a failure while writing the output.
 */
export class MergeError extends Error {
  constructor(
    readonly code: 'merge-unreadable' | 'merge-mismatch' | 'merge-incomplete' | 'merge-failed',
    message: string,
  ) {
    super(message);
  }
}

/**
 * Splits `costs` (one per work item, in output order) into `count`
 * contiguous runs of about equal total cost: item i goes to the part whose
 * share of the total holds the middle of its cost. Returns each item's part.
 */
export function assignParts(costs: readonly number[], count: number): number[] {
  const total = costs.reduce((a, b) => a + b, 0);
  let before = 0;
  return costs.map((c) => {
    const middle = total > 0 ? (before + c / 2) / total : 0;
    before += c;
    return Math.min(count - 1, Math.floor(middle * count));
  });
}

/** The digest that ties the parts of one run together. */
export function runDigest(tensors: readonly OutputTensorSpec[], maxShardBytes: number, configJson: string, recipeYaml: string): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ maxShardBytes, tensors: tensors.map((t) => [t.name, t.dtype, t.shape, t.byteLength]) }));
  h.update('\0');
  h.update(configJson);
  h.update('\0');
  h.update(recipeYaml);
  return h.digest('hex');
}

/** Parses `I/N` (0 ≤ I < N), or null. */
export function parsePartSpec(text: string): PartSpec | null {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  if (!m) return null;
  const index = Number(m[1]);
  const count = Number(m[2]);
  return count >= 1 && index < count ? { index, count } : null;
}

async function readManifest(dir: string): Promise<PartManifest> {
  let text: string;
  try {
    text = await readFile(join(dir, PART_MANIFEST), 'utf8');
  } catch {
    throw new MergeError('merge-unreadable', `${dir} is not a part folder written by \`quantc apply --shard\` (no ${PART_MANIFEST})`);
  }
  let m: PartManifest;
  try {
    m = JSON.parse(text) as PartManifest;
  } catch (e) {
    throw new MergeError('merge-unreadable', `${join(dir, PART_MANIFEST)}: not valid JSON (${(e as Error).message})`);
  }
  if (m.formatVersion !== FORMAT_VERSION || !m.part || !Array.isArray(m.tensors) || !Array.isArray(m.owned) || typeof m.runDigest !== 'string') {
    throw new MergeError('merge-unreadable', `${join(dir, PART_MANIFEST)}: not a part manifest of format ${FORMAT_VERSION}`);
  }
  return m;
}

/** Progress of {@link mergeParts}. */
export interface MergeSummary {
  readonly parts: number;
  readonly shards: number;
  readonly tensors: number;
  readonly bytes: number;
  readonly seconds: number;
}

/**
 * Checks that `dirs` are all the parts of one run, each exactly once, that
 * together they hold every tensor of the layout exactly once with the
 * promised dtype, shape and size, and writes the checkpoint to `outDir`
 * (atomically, as `apply` does).
 */
export async function mergeParts(dirs: readonly string[], outDir: string): Promise<MergeSummary> {
  const started = performance.now();
  if (dirs.length === 0) throw new MergeError('merge-unreadable', 'no part folders given');
  const manifests = await Promise.all(dirs.map(readManifest));
  const first = manifests[0]!;
  const byIndex = new Map<number, string>();
  manifests.forEach((m, i) => {
    if (m.runDigest !== first.runDigest || m.part.count !== first.part.count) {
      throw new MergeError('merge-mismatch', `${dirs[i]} is part ${m.part.index}/${m.part.count} of a different run than ${dirs[0]} (recipe, model, options or quantc version differ)`);
    }
    const other = byIndex.get(m.part.index);
    if (other !== undefined) throw new MergeError('merge-incomplete', `part ${m.part.index}/${m.part.count} is given twice: ${other} and ${dirs[i]}`);
    byIndex.set(m.part.index, dirs[i]!);
  });
  const missing = Array.from({ length: first.part.count }, (_, i) => i).filter((i) => !byIndex.has(i));
  if (missing.length > 0) throw new MergeError('merge-incomplete', `part${missing.length > 1 ? 's' : ''} ${missing.map((i) => `${i}/${first.part.count}`).join(', ')} missing; every part of the run is needed`);

  // Where each tensor's bytes are, checked against the layout.
  const where = new Map<string, TensorEntry>();
  for (const [i, m] of manifests.entries()) {
    let entries: ReadonlyMap<string, TensorEntry>;
    try {
      entries = new Map((await readSafetensorsHeader(join(dirs[i]!, PART_TENSORS))).map((e) => [e.name, e]));
    } catch (e) {
      const why = e instanceof CheckpointError ? e.message : `${join(dirs[i]!, PART_TENSORS)} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
      throw new MergeError('merge-unreadable', why);
    }
    for (const name of m.owned) {
      const e = entries.get(name);
      if (!e) throw new MergeError('merge-incomplete', `${join(dirs[i]!, PART_TENSORS)} lacks ${name}, which its manifest lists (an interrupted or altered part?)`);
      if (where.has(name)) throw new MergeError('merge-incomplete', `${name} is written by two parts`);
      where.set(name, e);
    }
  }
  const layout: ShardLayout = layoutShards(first.tensors, first.maxShardBytes);
  for (const t of first.tensors) {
    const e = where.get(t.name);
    if (!e) throw new MergeError('merge-incomplete', `no part wrote ${t.name}`);
    if (e.dtype !== t.dtype || e.byteLength !== t.byteLength || e.shape.join() !== t.shape.join()) {
      throw new MergeError('merge-mismatch', `${t.name} in ${e.file} is ${e.dtype} [${e.shape.join(', ')}], the layout says ${t.dtype} [${t.shape.join(', ')}]`);
    }
  }

  const stage = await stageOutputDir(outDir);
  const writer = new ShardedWriter(stage.path, layout);
  try {
    for (const s of layout.shards) for (const t of s.tensors) await writer.writeChunks(t.name, t.byteLength, readTensorChunks(where.get(t.name)!));
    await writer.close();
    if (layout.shards.length > 1) await writeFile(join(stage.path, 'model.safetensors.index.json'), shardIndexJson(layout));
    const zero = byIndex.get(0)!;
    for (const ent of await readdir(zero, { withFileTypes: true })) {
      if (ent.name === PART_MANIFEST || ent.name === PART_TENSORS) continue;
      if (ent.isDirectory()) await cp(join(zero, ent.name), join(stage.path, ent.name), { recursive: true });
      else if (ent.isFile()) await copyFile(join(zero, ent.name), join(stage.path, ent.name));
    }
    await stage.commit();
  } catch (e) {
    await writer.abort();
    await stage.discard();
    const message = writeFailure(e, outDir);
    throw message ? new MergeError('merge-failed', message) : e;
  }
  return { parts: manifests.length, shards: layout.shards.length, tensors: first.tensors.length, bytes: layout.totalBytes, seconds: (performance.now() - started) / 1000 };
}
