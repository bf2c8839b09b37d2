/**
 * The forward executor on CUDA against the CPU, per architecture: every
 * layer's output and the logits of the same token batches, float32 on both
 * (TF32 off), the routed tokens per expert, and the sequential pipeline's
 * looped passes (GPTQ's Hessians) against the CPU's batch-by-batch ones.
 *
 *   node dist/test/bench/device-parity.js MODEL_DIR… [--devices cpu,cuda] [--json FILE]
 *
 * A folder may hold `model.safetensors.gz` (the test fixtures' form); it is
 * unpacked into a temporary folder first. Exits 1 when a model differs by
 * more than 1e-4 relative anywhere.
 */
import { copyFile, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { ForwardModel, type TokenBatch } from '../../src/execute/forward/executor.js';
import { runSequential, type LayerModifier } from '../../src/execute/pipeline/sequential.js';
import type { Device, RawTensor } from '../../src/execute/runtime.js';
import { relativeError } from './relative-error.js';

/** `dir` itself, or a temporary copy with `model.safetensors.gz` unpacked. */
async function unpacked(dir: string): Promise<string> {
  const files = await readdir(dir);
  if (!files.includes('model.safetensors.gz')) return dir;
  const out = await mkdtemp(join(tmpdir(), 'quantc-parity-'));
  for (const f of files) {
    if (f === 'model.safetensors.gz') await writeFile(join(out, 'model.safetensors'), gunzipSync(await readFile(join(dir, f))));
    else await copyFile(join(dir, f), join(out, f));
  }
  return out;
}

/** Two batches of unequal shapes below `vocab`. */
function tokenBatches(vocab: number): TokenBatch[] {
  let s = 5;
  const next = (): number => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) % vocab);
  const batch = (rows: number, seq: number): number[][] => Array.from({ length: rows }, () => Array.from({ length: seq }, next));
  return [batch(2, 48), batch(1, 33)];
}

/** Every layer's output, the logits and routed counts of `batches` on `device`. */
async function forward(dir: string, device: Device, batches: readonly TokenBatch[]): Promise<{ layers: Float32Array[]; logits: Float32Array[]; routed: number[] }> {
  const model = await ForwardModel.open(dir, device);
  model.layerOutputs = true;
  const layers: Float32Array[] = [];
  const routed: number[] = [];
  const hidden = await model.layers(await model.embed(batches), {
    onLayer: (layer, b, h, extra) => {
      layers[layer * batches.length + b] = Float32Array.from(h.data);
      if (extra.routed) routed.push(...(extra.routed.data as Float32Array));
    },
  });
  return { layers, logits: await model.head(hidden, 'logits'), routed };
}

/** Pass A's Hessians of every layer (the layers left as they are). */
class Hessians implements LayerModifier {
  readonly observe = { experts: 'all', hessians: true } as const;
  collect(_layer: number, _run: number, _rows: number, _calls: number, outputs: Readonly<Record<string, RawTensor>>): void {
    for (const [name, t] of Object.entries(outputs)) if (name.startsWith('hess') || name.startsWith('ehess')) this.add(name, t.data as Float32Array);
  }
  private readonly byName = new Map<string, Float64Array>();
  private add(name: string, data: Float32Array): void {
    const prior = this.byName.get(name) ?? new Float64Array(data.length);
    for (let i = 0; i < data.length; i++) prior[i]! += data[i]!;
    this.byName.set(name, prior);
  }
  async finishLayer() {
    return { linears: new Map(), vectors: new Map() };
  }
  sorted(): [string, Float64Array][] {
    return [...this.byName].sort(([a], [b]) => a.localeCompare(b));
  }
}

async function hessians(dir: string, device: Device, batches: readonly TokenBatch[]): Promise<[string, Float64Array][]> {
  const model = await ForwardModel.open(dir, device);
  const h = new Hessians();
  await runSequential(model, batches, h, [], { runBytes: 1 << 30 });
  return h.sorted();
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const jsonAt = args.indexOf('--json');
  const json = jsonAt >= 0 ? args[jsonAt + 1] : undefined;
  const devAt = args.indexOf('--devices');
  const [first, second] = (devAt >= 0 ? args[devAt + 1]! : 'cpu,cuda').split(',') as [Device, Device];
  const dirs = args.filter((a, i) => !a.startsWith('--') && i !== jsonAt + 1 && i !== devAt + 1);
  const rows: unknown[] = [];
  let worst = 0;
  for (const d of dirs) {
    const dir = await unpacked(d);
    const probe = await ForwardModel.open(dir);
    const batches = tokenBatches(probe.config.vocabSize);
    const cpu = await forward(dir, first, batches);
    const cuda = await forward(dir, second, batches);
    const layer = Math.max(...cpu.layers.map((l, i) => relativeError(cuda.layers[i]!, l)));
    const logits = Math.max(...cpu.logits.map((l, i) => relativeError(cuda.logits[i]!, l)));
    const routedEqual = JSON.stringify(cpu.routed) === JSON.stringify(cuda.routed);
    const hc = await hessians(dir, first, batches);
    const hg = await hessians(dir, second, batches);
    const hess = hc.length === hg.length && hc.every(([n], i) => hg[i]![0] === n) ? Math.max(0, ...hc.map(([, s], i) => relativeError(hg[i]![1], s))) : Infinity;
    const row = { model: probe.config.modelType, dir: basename(d), layerOutputs: layer, logits, routedEqual, hessians: hess, hessianCount: hc.length };
    rows.push(row);
    worst = Math.max(worst, layer, logits, hess, routedEqual ? 0 : Infinity);
    console.log(`${String(row.model).padEnd(14)} layers ${layer.toExponential(1)}  logits ${logits.toExponential(1)}  routed ${routedEqual ? 'equal' : 'DIFFER'}  Hessians ${hess.toExponential(1)} over ${hc.length}`);
  }
  if (json) await writeFile(json, `${JSON.stringify(rows, null, 2)}\n`);
  if (worst > 1e-4) process.exitCode = 1;
}

await main();
