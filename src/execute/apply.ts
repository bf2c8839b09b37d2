/**
 * The weight pass: streams a checkpoint through round-to-nearest
 * quantization and writes the compressed-tensors checkpoint llm-compressor
 * main would write, atomically (temporary folder renamed at the end), with
 * the job's calibrated tensors (if any) next to the weights.
 */
import { copyFile, cp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { FUSED_LAYER_NAMES } from '../match/fused-groups.js';
import { VISION_LANGUAGE } from '../model/architectures/vision-language.js';
import { stageOutputDir, writeFailure } from './output-dir.js';
import { dumpPyJson, parsePyJson, PyNumber, toPyJson, type PyJson } from './python-json.js';
import { quantizationConfig } from './quantization-config.js';
import { GraphRuntime } from './runtime.js';
import { RuntimePool } from './runtime-pool.js';
import { BufferPool } from './buffer-pool.js';
import { cpuKernelSupports } from './rtn/cpu-kernel.js';
import { defaultLoopWorkers, LoopWorkerError, startDeviceLoopWorkers, startLoopWorkers, type LoopWorker } from './loop-workers.js';
import { NonFiniteWeightError, quantizeStack, quantizeUnit, type UnitModule, type UnitOutput } from './quantize-unit.js';
import { stackKey } from './rtn/quantize-weight.js';
import { planWeightKernel, type WeightKernel } from './rtn/weight-kernel.js';
import { DTYPE_BYTES, type SafetensorsDtype } from './dtypes.js';
import { castBytes, loadDtype, savedDtype, type CastDtype } from './saved-dtype.js';
import { openCheckpoint, readTensorBytes, readTensorChunks, type CheckpointIndex, type TensorEntry } from './safetensors-reader.js';
import { roundTripOffsetNorm } from './offset-norms.js';
import { layoutShards, shardIndexJson, type OutputTensorSpec } from './safetensors-writer.js';
import { ShardedWriter, WriteWindow } from './sharded-writer.js';
import { assignParts, PART_MANIFEST, PART_TENSORS, runDigest, type PartManifest } from './parts.js';
import { QUANTC_VERSION } from '../version.js';
import type { ApplyEvent, ApplyJob, ApplySummary, ExtraTensor, SolvedWeight } from './types.js';
import { withGroupIndex } from './gptq/group-order.js';
import { fusedEntry, readWeight, resolveWeight, savedExpertName, storedBlockName, type WeightSource } from './weight-source.js';

/** A job that cannot run; the message is user-facing. */
export class ApplyError extends Error {}

/** File-system failures while writing (a full disk, a read-only or vanished folder) as {@link ApplyError}s; anything else unchanged. */
function asApplyError(e: unknown, outDir: string): unknown {
  const message = writeFailure(e, outDir);
  return message ? new ApplyError(message) : e;
}

const DEFAULT_MAX_SHARD_BYTES = 20e9;

interface PlannedModule {
  readonly name: string;
  /** The name its tensors are written under: its own, or its stored block's (see WeightSource.writeAs). */
  readonly writeAs: string;
  readonly source: WeightSource;
  readonly kernel: WeightKernel;
  /** The weight an algorithm quantized (GPTQ), written with the scales of the original weight. */
  readonly solved?: SolvedWeight;
}

/** Modules processed together (NVFP4 fused siblings), written contiguously. */
interface Unit {
  readonly modules: readonly PlannedModule[];
}

type Item =
  /** A tensor written as it was read, cast to `as` (see saved-dtype.ts), under the name `key`. */
  | { readonly key: string; readonly copy: TensorEntry; readonly as: SafetensorsDtype }
  | { readonly key: string; readonly unit: Unit }
  | { readonly key: string; readonly slice: WeightSource; readonly name: string }
  | { readonly key: string; readonly extra: ExtraTensor };

/** The float dtype of a norm weight; anything else is an error. */
function floatDtype(t: TensorEntry): 'BF16' | 'F16' | 'F32' {
  if (t.dtype === 'BF16' || t.dtype === 'F16' || t.dtype === 'F32') return t.dtype;
  throw new ApplyError(`${t.name}: a norm weight stored as ${t.dtype} (expected BF16, F16 or F32)`);
}

function splitName(name: string): [string, string] {
  const i = name.lastIndexOf('.');
  return [name.slice(0, i), name.slice(i + 1)];
}

/**
 * The input embedding a tied output embedding (`lm_head` under
 * `tie_word_embeddings`) shares its weight with: the checkpoint stores that
 * weight once, under the embedding's name.
 */
function tiedEmbedding(index: CheckpointIndex, shape: (name: string) => readonly number[] | undefined): TensorEntry | undefined {
  const candidates = [...index.tensors.values()].filter((t) => /(?:^|\.)(embed_tokens|wte|word_embeddings)\.weight$/.test(t.name) && t.shape.length === 2);
  return candidates.length === 1 && shape(candidates[0]!.name) !== undefined ? candidates[0] : undefined;
}

/** A Llava-layout config: its text config and whether the config class ties the embeddings. */
function visionLanguageOf(config: Record<string, PyJson>): { text: PyJson; tied: boolean } | undefined {
  const vlm = typeof config.model_type === 'string' ? VISION_LANGUAGE.get(config.model_type) : undefined;
  const text = config.text_config;
  if (!vlm || text === null || typeof text !== 'object' || Array.isArray(text) || text instanceof PyNumber) return undefined;
  return { text, tied: vlm.tied(config as Record<string, unknown>, text as Record<string, unknown>) };
}

function planModules(job: ApplyJob, index: CheckpointIndex, tied: boolean): PlannedModule[] {
  return job.modules.map((m) => {
    let source = resolveWeight(index, m.name, job.fusedExperts);
    if (!source && tied && m.name === 'lm_head') {
      // Quantizing a tied lm_head unties it, as llm-compressor does: its weight starts as the embedding's, the embedding stays as it is.
      const entry = tiedEmbedding(index, (n) => index.tensors.get(n)?.shape);
      if (entry) source = { entry, dtype: entry.dtype, shape: [entry.shape[0]!, entry.shape[1]!] };
    }
    if (!source) throw new ApplyError(`${m.name}: no 2-D weight in the checkpoint (looked for ${m.name}.weight and fused experts)`);
    const group = job.groups[m.group];
    if (!group) throw new ApplyError(`${m.name}: config group ${m.group} does not exist`);
    const solved = job.solvedWeights?.get(m.name);
    try {
      if (!solved) return { name: m.name, writeAs: source.writeAs ?? m.name, source, kernel: planWeightKernel(group.scheme, source.shape, source.dtype) };
      // Activation ordering was GPTQ's business: static ordering leaves no trace in the layout, group ordering adds weight_g_idx.
      const kernel = planWeightKernel({ ...group.scheme, weights: { ...group.scheme.weights!, actorder: null } }, source.shape, source.dtype);
      return { name: m.name, writeAs: source.writeAs ?? m.name, source, kernel: solved.gIdx ? withGroupIndex(kernel) : kernel, solved };
    } catch (e) {
      throw new ApplyError(`${m.name}: ${(e as Error).message}`);
    }
  });
}

function formUnits(modules: readonly PlannedModule[], index: CheckpointIndex): Unit[] {
  const byName = new Map(modules.map((m) => [m.name, m]));
  const taken = new Set<string>();
  const units: Unit[] = [];
  for (const m of modules) {
    if (taken.has(m.name)) continue;
    if (m.kernel.kind !== 'nvfp4') {
      units.push({ modules: [m] });
      continue;
    }
    const [parent, leaf] = splitName(m.name);
    const set = FUSED_LAYER_NAMES.find((s) => s.includes(leaf));
    const members: PlannedModule[] = [];
    for (const sib of set ?? [leaf]) {
      const name = `${parent}.${sib}`;
      const pm = byName.get(name);
      if (pm && pm.kernel.kind === 'nvfp4') members.push(pm);
      else if (pm || index.tensors.has(`${name}.weight`)) {
        throw new ApplyError(`fused layers ${(set ?? []).map((s) => `${parent}.${s}`).join(', ')} must all use the same NVFP4 (tensor_group) quantization; ${name} does not`);
      }
    }
    for (const x of members) taken.add(x.name);
    units.push({ modules: members });
  }
  return units;
}

function outputSpecs(item: Item): OutputTensorSpec[] {
  if ('copy' in item) return [{ name: item.key, dtype: item.as, shape: item.copy.shape, byteLength: item.copy.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[item.as] }];
  if ('extra' in item) return [{ name: item.extra.name, dtype: item.extra.dtype, shape: item.extra.shape, byteLength: item.extra.bytes.byteLength }];
  if ('slice' in item) {
    const bytes = item.slice.shape[0] * item.slice.shape[1] * (item.slice.entry.byteLength / item.slice.entry.shape.reduce((a, b) => a * b, 1));
    return [{ name: item.name, dtype: item.slice.dtype, shape: item.slice.shape, byteLength: bytes }];
  }
  return item.unit.modules.flatMap((m) => m.kernel.outputs.map((o) => ({ name: `${m.writeAs}.${o.suffix}`, dtype: o.dtype, shape: o.shape, byteLength: o.byteLength })));
}

/** What an item costs to produce, for balancing parts: the bytes it reads. */
function itemCost(item: Item): number {
  if ('unit' in item) return item.unit.modules.reduce((a, m) => a + m.source.shape[0] * m.source.shape[1] * (m.source.entry.byteLength / m.source.entry.shape.reduce((x, y) => x * y, 1)), 0);
  return outputSpecs(item).reduce((a, s) => a + s.byteLength, 0);
}

/** Lists the per-expert weights of fused params that no module quantizes (written unquantized). */
function unquantizedSlices(job: ApplyJob, index: CheckpointIndex, quantized: ReadonlySet<string>): Item[] {
  const items: Item[] = [];
  for (const param of job.fusedExperts) {
    const entry = fusedEntry(index, param);
    if (!entry) continue;
    for (let e = 0; e < entry.shape[0]; e++) {
      for (const proj of param.projections) {
        const name = `${param.expertsModule}.${e}.${proj}`;
        if (quantized.has(name)) continue;
        const slice = resolveWeight(index, name, [param]);
        if (slice) items.push({ key: `${name}.weight`, slice, name: `${name}.weight` });
      }
    }
  }
  return items;
}

/** Fused expert biases `[E, out]` split per expert and projection, as llm-compressor writes them (`experts.<e>.<projection>.bias`). */
async function fusedBiasSlices(job: ApplyJob, index: CheckpointIndex): Promise<Item[]> {
  const items: Item[] = [];
  for (const param of job.fusedExperts) {
    const entry = param.bias === undefined ? undefined : index.tensors.get(param.bias);
    if (!entry || entry.shape.length !== 2) continue;
    const bytes = await readTensorBytes(entry);
    const [experts, out] = entry.shape as [number, number];
    const rows = out / param.projections.length;
    const rowBytes = rows * DTYPE_BYTES[entry.dtype];
    for (let e = 0; e < experts; e++) {
      param.projections.forEach((proj, p) => {
        const name = `${param.expertsModule}.${e}.${proj}.bias`;
        const start = (e * param.projections.length + p) * rowBytes;
        items.push({ key: name, extra: { name, dtype: entry.dtype, shape: [rows], bytes: bytes.slice(start, start + rowBytes) } });
      });
    }
  }
  return items;
}

/** Reads a unit's weights: a transform's bytes where it changed them, else the checkpoint's, into pooled buffers when `pool` has some. */
function readUnit(unit: Unit, changed: ReadonlyMap<string, Uint8Array> | undefined, pool?: BufferPool): Promise<Uint8Array[]> {
  const reads = Promise.all(unit.modules.map((m) => changed?.get(m.name) ?? readWeight(m.source, m.source.fused ? null : pool?.take(m.source.entry.byteLength))));
  // Awaited later; a failure must not surface as an unhandled rejection meanwhile.
  reads.catch(() => undefined);
  return reads;
}

/** Where a unit is quantized: a runtime (one per device), and on the CPU possibly a worker thread. */
interface Slot {
  readonly rt: GraphRuntime;
  readonly worker?: LoopWorker;
}

/**
 * Whether the CPU loops (a worker thread) can quantize a unit: kernels they
 * have, whatever the weights come from (the checkpoint, a transform, or
 * GPTQ's solve, whose weights travel with their modules). GPTQ's group
 * activation order keeps its own qparams (with their rounding function,
 * which cannot travel) and stays on this thread's runtime.
 */
function inWorker(unit: Unit, rt: GraphRuntime): boolean {
  return rt.cpuLoops && unit.modules.every((m) => cpuKernelSupports(m.kernel) && !m.solved?.qparams);
}

/** Bytes of weights read ahead of the writer, at most (more when a single unit is larger). */
const READ_AHEAD_BYTES = 2 ** 31;

/** Bytes of tensors handed to the writer and not yet written, at most (more when a single tensor is larger). */
const WRITE_AHEAD_BYTES = 2 ** 28;

/** Bytes of same-shaped weights stacked into one graph run, at most: enough to spare small weights (experts) a run each, small enough to keep reads, runs and writes overlapping. */
const STACK_BYTES = 2 ** 26;

/** Where units are quantized: the devices' runtimes, and CPU loops (worker threads, or this thread) for the units they take. */
interface Pools {
  readonly device: RuntimePool<Slot>;
  /** The CPU loops' pool and runtime, or null where every unit goes to the devices. */
  readonly loops: { readonly pool: RuntimePool<Slot>; readonly rt: GraphRuntime } | null;
}

/**
 * The weight pass as a pipeline: units are read ahead (a few per runtime,
 * within {@link READ_AHEAD_BYTES}), quantized on the first free runtime of
 * their pool (the CPU loops' for the units they take, else the devices'),
 * and handed out in order for writing, so reading, quantizing (on every
 * device and core) and writing overlap. Results do not depend on which
 * runtime quantized what.
 */
class UnitPipeline {
  private readonly results: Promise<{ out: UnitOutput; bytesRead: number }>[] = [];
  /** The task (one graph run may quantize several units) of each started unit. */
  private readonly taskOf: number[] = [];
  private readonly taskUnitsLeft: number[] = [];
  private tasksInFlight = 0;
  private started = 0;
  private taken = 0;
  private inFlightBytes = 0;
  private readonly buffers = new BufferPool(READ_AHEAD_BYTES);

  constructor(
    private readonly units: readonly Unit[],
    private readonly pools: Pools,
    private readonly changed: ReadonlyMap<string, Uint8Array> | undefined,
  ) {
    this.fill();
  }

  /** The pool that quantizes `unit`. */
  private poolOf(unit: Unit): RuntimePool<Slot> {
    const loops = this.pools.loops;
    return loops && inWorker(unit, loops.rt) ? loops.pool : this.pools.device;
  }

  private unitBytes(u: Unit): number {
    return u.modules.reduce((a, m) => a + m.source.shape[0] * m.source.shape[1] * DTYPE_BYTES[m.source.dtype], 0);
  }

  private static modules(unit: Unit): UnitModule[] {
    return unit.modules.map((m): UnitModule => ({ name: m.name, writeAs: m.writeAs, kernel: m.kernel, ...(m.solved ? { solved: m.solved } : {}) }));
  }

  private async quantize(slot: Slot, unit: Unit, raws: Uint8Array[]): Promise<{ out: UnitOutput; bytesRead: number }> {
    const modules = UnitPipeline.modules(unit);
    if (slot.worker) {
      // Buffers are transferred: a transform's weights (which the job owns) go as copies.
      const sent = raws.map((r, i) => (this.changed?.has(unit.modules[i]!.name) ? r.slice() : r));
      const { out, bytesRead, raws: back } = await slot.worker.quantize(modules, sent);
      for (const r of back) this.buffers.give(r);
      return { out, bytesRead };
    }
    const result = await quantizeUnit(slot.rt, modules, raws);
    this.giveBack(unit, raws);
    return result;
  }

  /**
   * Reads and quantizes one unit: in its worker thread, from the files,
   * where one takes it and no transform changed its weights (the workers
   * then read beside each other, fused experts' slabs sliced there too);
   * else read here (ahead, into the buffer pool) and quantized on the first
   * free runtime of its pool. `QUANTC_WORKER_READS=0` reads everything here
   * (to measure the difference).
   */
  private start(unit: Unit): Promise<{ out: UnitOutput; bytesRead: number }> {
    const pool = this.poolOf(unit);
    if (process.env.QUANTC_WORKER_READS !== '0' && pool.runtimes[0]!.worker && unit.modules.every((m) => !this.changed?.has(m.name))) {
      const reads = unit.modules.map((m) => m.source);
      return pool.run((slot) => slot.worker!.readAndQuantize(UnitPipeline.modules(unit), reads));
    }
    return readUnit(unit, this.changed, this.buffers).then((raws) => pool.run((slot) => this.quantize(slot, unit, raws)));
  }

  /** Returns a unit's checkpoint weights to the pool (not a transform's bytes, which the job owns). */
  private giveBack(unit: Unit, raws: readonly Uint8Array[]): void {
    unit.modules.forEach((m, i) => {
      if (!this.changed?.has(m.name) && !m.source.fused) this.buffers.give(raws[i]!);
    });
  }

  /** The stack key of a unit whose one weight comes from the checkpoint (see `stackKey`), else null. */
  private stackKeyOf(unit: Unit): string | null {
    const m = unit.modules[0]!;
    if (unit.modules.length !== 1 || m.solved || this.changed?.has(m.name) || this.poolOf(unit) !== this.pools.device) return null;
    return stackKey(this.pools.device.runtimes[0]!.rt, m.kernel);
  }

  /**
   * Starts tasks while fewer than two per runtime (plus one) are pending and
   * the read-ahead budget allows; a task is one unit, or consecutive units
   * of one stack key (up to {@link STACK_BYTES}) quantized in one graph run.
   */
  private fill(): void {
    const window = 2 * (this.pools.device.runtimes.length + (this.pools.loops?.pool.runtimes.length ?? 0)) + 1;
    while (this.started < this.units.length && this.tasksInFlight < window) {
      const first = this.units[this.started]!;
      const key = this.stackKeyOf(first);
      const group = [first];
      let bytes = this.unitBytes(first);
      while (key !== null && this.started + group.length < this.units.length) {
        const next = this.units[this.started + group.length]!;
        if (this.stackKeyOf(next) !== key || bytes + this.unitBytes(next) > STACK_BYTES) break;
        group.push(next);
        bytes += this.unitBytes(next);
      }
      if (this.started > this.taken && this.inFlightBytes + bytes > READ_AHEAD_BYTES) break;
      this.inFlightBytes += bytes;
      const task = this.taskUnitsLeft.length;
      this.taskUnitsLeft.push(group.length);
      this.tasksInFlight++;
      let results: Promise<{ out: UnitOutput; bytesRead: number }>[];
      if (group.length === 1) results = [this.start(first)];
      else {
        const all = Promise.all(group.map((u) => readUnit(u, this.changed, this.buffers))).then((raws) =>
          this.pools.device.run(async (slot) => {
            const modules = group.map((u) => UnitPipeline.modules(u)[0]!);
            if (slot.worker) {
              // Stacked units hold checkpoint weights only (stackKeyOf): their buffers go over and come back.
              const { outs, raws: back } = await slot.worker.quantizeStack(modules, raws.map((r) => r[0]!));
              for (const r of back) this.buffers.give(r);
              return outs;
            }
            const done = await quantizeStack(slot.rt, modules, raws.map((r) => r[0]!));
            group.forEach((u, i) => this.giveBack(u, raws[i]!));
            return done;
          }),
        );
        results = group.map((_, i) => all.then((r) => r[i]!));
      }
      for (const result of results) {
        // Awaited in order by next(); a failure must not surface as an unhandled rejection meanwhile.
        result.catch(() => undefined);
        this.results.push(result);
        this.taskOf.push(task);
      }
      this.started += group.length;
    }
  }

  /** Waits until every started unit has settled (before its runtimes are released). */
  async settle(): Promise<void> {
    await Promise.allSettled(this.results.slice(this.taken));
  }

  /** The next unit's tensors, in unit order. */
  async next(): Promise<{ out: UnitOutput; bytesRead: number }> {
    const i = this.taken;
    const result = await this.results[i]!.catch((e: unknown) => {
      throw e instanceof NonFiniteWeightError || e instanceof LoopWorkerError ? new ApplyError(e.message) : e;
    });
    this.results[i] = undefined as never;
    this.taken++;
    this.inFlightBytes -= this.unitBytes(this.units[i]!);
    if (--this.taskUnitsLeft[this.taskOf[i]!]! === 0) this.tasksInFlight--;
    this.fill();
    return result;
  }
}

async function copyOtherFiles(modelDir: string, outDir: string, weightFiles: ReadonlySet<string>, finalDir: string): Promise<void> {
  // The output may be placed inside the model folder: never copy it into itself.
  const skip = new Set([resolve(outDir), resolve(finalDir)]);
  for (const ent of await readdir(modelDir, { withFileTypes: true })) {
    const name = ent.name;
    if (skip.has(resolve(modelDir, name))) continue;
    if (weightFiles.has(name) || name === 'config.json' || name === 'recipe.yaml' || name === 'model.safetensors.index.json' || name.endsWith('.safetensors')) continue;
    // A Hugging Face cache snapshot holds symlinks into its blobs: copy what they point at.
    const kind = ent.isSymbolicLink() ? await stat(join(modelDir, name)).catch(() => undefined) : ent;
    if (kind?.isDirectory()) await cp(join(modelDir, name), join(outDir, name), { recursive: true, dereference: true });
    else if (kind?.isFile()) await copyFile(join(modelDir, name), join(outDir, name));
  }
}

/**
 * Runs a job's weight pass (calibration, if the job needs it, has already
 * filled in `extraTensors`). Progress goes to `onEvent`; the output folder
 * appears only when everything has been written.
 */
export async function applyJob(job: ApplyJob, onEvent: (e: ApplyEvent) => void = () => undefined): Promise<ApplySummary> {
  const started = performance.now();
  const index = await openCheckpoint(job.modelDir);
  let config: PyJson;
  try {
    config = parsePyJson(await readFile(join(job.modelDir, 'config.json'), 'utf8'));
  } catch (e) {
    throw new ApplyError(`${join(job.modelDir, 'config.json')}: ${(e as Error).message}`);
  }
  if (config === null || typeof config !== 'object' || Array.isArray(config) || config instanceof PyNumber) {
    throw new ApplyError(`${join(job.modelDir, 'config.json')}: not a JSON object`);
  }
  const vlm = visionLanguageOf(config as Record<string, PyJson>);
  // A Llava-layout model ties as its config class decides, and only where the checkpoint stores no head of its own.
  const tied = vlm ? vlm.tied && !index.tensors.has('language_model.lm_head.weight') && !index.tensors.has('lm_head.weight') : (config as Record<string, PyJson>).tie_word_embeddings === true;
  const modules = planModules(job, index, tied);
  // Untouched tensors come back in the dtype llm-compressor's transformers load gives them; a quantized checkpoint's
  // (its scales) load through its quantizer, as they are.
  const modelType = String((config as Record<string, PyJson>).model_type ?? '');
  const load = (config as Record<string, PyJson>).quantization_config === undefined ? loadDtype(config as Record<string, unknown>) : null;
  const units = formUnits(modules, index);
  const quantizedNames = new Set(modules.map((m) => m.name));
  // A module's own weight is replaced by its quantized tensors; a weight it only starts from (a tied embedding) is still written.
  const own = (m: PlannedModule): boolean => m.source.writeAs !== undefined || m.source.entry.name === `${m.name}.weight`;
  // Fused experts are stored under their checkpoint name (GraniteMoE's `input_linear.weight`), with their fused bias if any.
  const fusedTensors = job.fusedExperts.flatMap((f) => [fusedEntry(index, f)?.name ?? f.tensor, ...(f.bias === undefined ? [] : [f.bias])]);
  const replaced = new Set<string>([...modules.filter((m) => !m.source.fused && own(m)).map((m) => m.source.entry.name), ...fusedTensors]);
  const untied = modules.some((m) => !m.source.fused && !own(m));
  const items: Item[] = [
    ...[...index.tensors.values()].filter((t) => !replaced.has(t.name)).map((t) => ({ key: savedExpertName(index, t.name), copy: t, as: savedDtype(t.name, t.dtype, modelType, load) })),
    ...units.map((u) => ({ key: `${u.modules[0].writeAs}.weight`, unit: u })),
    ...unquantizedSlices(job, index, quantizedNames),
    ...(await fusedBiasSlices(job, index)),
    ...(job.extraTensors ?? []).map((x) => ({ ...x, name: storedBlockName(index, x.name) })).map((extra) => ({ key: extra.name, extra })),
  ];
  items.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const specs = items.flatMap(outputSpecs);
  const seen = new Set<string>();
  for (const spec of specs) {
    if (seen.has(spec.name)) throw new ApplyError(`${spec.name} would be written twice`);
    seen.add(spec.name);
  }
  const maxShardBytes = job.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  const layout = layoutShards(specs, maxShardBytes);
  // llm-compressor re-ties equal input and output embeddings before saving and marks the text config tied (`_retie_embeddings`).
  const retied: Record<string, PyJson> = vlm && tied && !untied ? { text_config: { ...(vlm.text as Record<string, PyJson>), tie_word_embeddings: true } } : {};
  const cfg = { ...(config as Record<string, PyJson>), ...retied, ...(untied ? { tie_word_embeddings: false } : {}), quantization_config: toPyJson(quantizationConfig({ ...job, ignore: job.ignore.map((n) => storedBlockName(index, n)) })) };
  const configJson = dumpPyJson(cfg);
  // A part writes the items it owns into one file; merging restores `layout`.
  const part = job.part;
  const owners = part ? assignParts(items.map(itemCost), part.count) : null;
  const mine = owners ? items.filter((_, i) => owners[i] === part!.index) : items;
  const mineSpecs = owners ? mine.flatMap(outputSpecs) : specs;
  const writeLayout = owners ? { shards: [{ file: PART_TENSORS, tensors: mineSpecs }], totalBytes: mineSpecs.reduce((a, t) => a + t.byteLength, 0) } : layout;
  const mineModules = mine.reduce((a, i) => a + ('unit' in i ? i.unit.modules.length : 0), 0);
  const stage = await stageOutputDir(job.outDir);
  onEvent({ kind: 'start', modules: mineModules, bytesIn: index.totalBytes });
  const runtimes = (job.devices ?? [{ device: job.device }]).map((slot) => {
    const rt = new GraphRuntime(slot.device, job.chunkElements, job.decodeBf16InGraph, job.encodeFp8InGraph, job.cpuLoops);
    rt.deviceId = slot.deviceId;
    return rt;
  });
  const allUnits = mine.flatMap((i) => ('unit' in i ? [i.unit] : []));
  const changed = job.changedWeights?.linears;
  // The units the CPU loops take run there, in worker threads while this thread writes: on one CPU, and on CUDA unless
  // `weightsOn` is 'device' (onnxruntime-node returns every output through host memory, and the loops on the host's cores
  // measured several times faster than the GPU graphs; the bytes are the same).
  const weightsOn = job.weightsOn ?? 'auto';
  const oneCpu = runtimes.length === 1 && runtimes[0]!.device === 'cpu';
  const loopRt = oneCpu ? runtimes[0]! : runtimes[0]!.device === 'cuda' && weightsOn !== 'device' ? new GraphRuntime('cpu', job.chunkElements, job.decodeBf16InGraph, job.encodeFp8InGraph, job.cpuLoops ?? true) : null;
  const workers = loopRt && allUnits.some((u) => inWorker(u, loopRt)) ? startLoopWorkers(job.cpuWorkers ?? defaultLoopWorkers(), READ_AHEAD_BYTES) : [];
  const loopSlots: Slot[] = workers.length > 0 ? workers.map((worker) => ({ rt: loopRt!, worker })) : loopRt && !oneCpu && weightsOn === 'cpu' ? [{ rt: loopRt }] : [];
  // Several devices quantize from a worker thread each (a run blocks the thread that issues it); their units are read there too.
  const deviceWorkers = startDeviceLoopWorkers(runtimes, READ_AHEAD_BYTES);
  const pools: Pools = {
    device: new RuntimePool<Slot>(runtimes.map((rt, i) => (deviceWorkers[i] ? { rt, worker: deviceWorkers[i] } : { rt }))),
    loops: loopSlots.length > 0 ? { pool: new RuntimePool(loopSlots), rt: loopRt! } : null,
  };
  const writer = new ShardedWriter(stage.path, writeLayout);
  let weightSeconds = 0;
  let weightBytes = 0;
  let pipeline: UnitPipeline | null = null;
  try {
    let done = 0;
    const offsetNorms = new Set(job.offsetNorms ?? []);
    pipeline = new UnitPipeline(allUnits, pools, changed);
    // Writes overlap (each tensor's place in its shard is fixed when it is handed over), up to WRITE_AHEAD_BYTES unfinished.
    const writes = new WriteWindow(WRITE_AHEAD_BYTES);
    for (const item of mine) {
      const replaced = 'copy' in item ? job.changedWeights?.tensors.get(item.copy.name) : undefined;
      const cast = (bytes: Uint8Array): Uint8Array => ('copy' in item && item.as !== item.copy.dtype ? castBytes(bytes, floatDtype(item.copy), item.as as CastDtype) : bytes);
      if (replaced) {
        const bytes = cast(replaced);
        await writes.add(writer.write(item.key, bytes), bytes.byteLength);
      } else if ('copy' in item && offsetNorms.has(item.copy.name)) {
        const bytes = cast(roundTripOffsetNorm(await readTensorBytes(item.copy), floatDtype(item.copy)));
        await writes.add(writer.write(item.key, bytes), bytes.byteLength);
      } else if ('copy' in item && item.as !== item.copy.dtype) {
        const bytes = cast(await readTensorBytes(item.copy));
        await writes.add(writer.write(item.key, bytes), bytes.byteLength);
      } else if ('copy' in item) await writes.add(writer.writeChunks(item.key, item.copy.byteLength, readTensorChunks(item.copy)), item.copy.byteLength);
      else if ('slice' in item) {
        const bytes = await readWeight(item.slice);
        await writes.add(writer.write(item.name, bytes), bytes.byteLength);
      } else if ('extra' in item) {
        const bytes = job.changedWeights?.tensors.get(item.extra.name) ?? item.extra.bytes;
        await writes.add(writer.write(item.extra.name, bytes), bytes.byteLength);
      } else {
        const t0 = performance.now();
        const { out, bytesRead } = await pipeline.next();
        for (const t of out) await writes.add(writer.write(t.name, t.bytes), t.bytes.byteLength);
        weightSeconds += (performance.now() - t0) / 1000;
        weightBytes += bytesRead;
        for (const m of item.unit.modules) onEvent({ kind: 'module', index: ++done, total: mineModules, name: m.name, bytesRead });
      }
    }
    const t0 = performance.now();
    await writes.drain();
    weightSeconds += (performance.now() - t0) / 1000;
    await writer.close();
    if (part) {
      const manifest: PartManifest = {
        formatVersion: 1,
        quantc: QUANTC_VERSION,
        part,
        runDigest: runDigest(specs, maxShardBytes, configJson, job.recipeYaml),
        maxShardBytes,
        tensors: specs,
        owned: mineSpecs.map((t) => t.name),
      };
      await writeFile(join(stage.path, PART_MANIFEST), JSON.stringify(manifest) + '\n');
    } else if (layout.shards.length > 1) await writeFile(join(stage.path, 'model.safetensors.index.json'), shardIndexJson(layout));
    // Part 0 carries the files that are not tensors; the other parts only their tensors.
    if (!part || part.index === 0) {
      await writeFile(join(stage.path, 'config.json'), configJson);
      await writeFile(join(stage.path, 'recipe.yaml'), job.recipeYaml);
      await copyOtherFiles(job.modelDir, stage.path, new Set(index.weightFiles), job.outDir);
    }
    for (const s of writeLayout.shards) onEvent({ kind: 'write', file: s.file });
    await stage.commit();
  } catch (e) {
    await pipeline?.settle();
    await writer.abort();
    await stage.discard();
    throw asApplyError(e, job.outDir);
  } finally {
    for (const rt of runtimes) await rt.dispose();
    if (loopRt && !oneCpu) await loopRt.dispose();
    for (const w of [...workers, ...deviceWorkers]) await w.terminate();
  }
  const seconds = (performance.now() - started) / 1000;
  const summary: ApplySummary = {
    seconds,
    bytesIn: index.totalBytes,
    bytesOut: writeLayout.totalBytes,
    ratio: layout.totalBytes > 0 ? index.totalBytes / layout.totalBytes : 0,
    quantized: mineModules,
    ignored: job.ignore.length,
    outDir: job.outDir,
    weightGBps: weightSeconds > 0 ? weightBytes / weightSeconds / 1e9 : 0,
    ...(runtimes.length > 1 ? { unitsPerRuntime: [...pools.device.tasks] } : (pools.loops?.pool.runtimes.length ?? 0) > 1 ? { unitsPerRuntime: [...pools.loops!.pool.tasks] } : {}),
    ...(!oneCpu && pools.loops && pools.loops.pool.tasks.some((n) => n > 0) ? { cpuThreads: Math.max(1, workers.length) } : {}),
    ...(runtimes.length > 1 ? { deviceThreads: deviceWorkers.length > 0 } : {}),
  };
  onEvent({ kind: 'done', summary });
  return summary;
}
