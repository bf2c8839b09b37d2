/**
 * Quantizes one weight through the ONNX graphs: observe per-group min/max,
 * compute scales (see qparams.ts), quantize and pack, and return the bytes of
 * every tensor compressed-tensors saves for the module.
 */
import { bf16Bytes, f16Bytes, fp8E4m3Bytes, toFloat32, uint16View } from '../dtypes.js';
import type { GraphRuntime, RawTensor } from '../runtime.js';
import { observeGraph, quantizeGraph, type QuantizeGraphOptions } from './graphs.js';
import { dtypeFacts, fp8Qparams, intQparams, mxQparams, nvfp4GlobalScale, nvfp4Qparams, nvfp4ScalesOfAbsBits } from './qparams.js';
import type { WeightKernel } from './weight-kernel.js';
import { cpuKernelSupports, observeAbsBf16Cpu, observeBf16Cpu, observeBlockAbsBf16Cpu, observeCpu, quantizeFp8BlocksBf16, quantizeFp8Bf16Table, quantizeFp8Cpu, quantizeIntBf16Table, quantizeMxfp4Bf16Table, quantizeNvfp4Bf16Cpu } from './cpu-kernel.js';

/** Whether a weight goes through the CPU loops rather than the graphs. */
function inLoops(rt: GraphRuntime, kernel: WeightKernel): boolean {
  return rt.cpuLoops && cpuKernelSupports(kernel);
}

/** FP8 E4M3 bytes of a weight in the CPU loops: straight from raw bf16 patterns, else from float32 values. */
function loopFp8(kernel: WeightKernel, grouped: RawTensor, scale: Float32Array): Uint8Array {
  if (kernel.view.dims.length === 4) return quantizeFp8BlocksBf16(kernel, grouped.data as Uint16Array, scale);
  if (grouped.type === 'uint16') return quantizeFp8Bf16Table(kernel, grouped.data as Uint16Array, scale);
  return fp8E4m3Bytes(quantizeFp8Cpu(kernel, grouped.data as Float32Array, scale));
}

/** Per-group statistics of one weight. */
export interface WeightStats {
  readonly min: Float32Array;
  readonly max: Float32Array;
  /**
   * Symmetric statistics of raw bf16 weights in the CPU loops: each group's
   * largest magnitude as bf16 bits (`max` is its value, `min` its negation;
   * NaN and infinity are largest).
   */
  readonly absBits?: Uint16Array;
}

function f32(data: Float32Array, dims: readonly number[]): RawTensor {
  return { type: 'float32', data, dims };
}

/**
 * The weight as the kernel's group view (zero-padded for blocks): raw bf16
 * bit patterns when the runtime decodes them in the graph and no padding is
 * needed, float32 values otherwise.
 */
export function groupedWeight(rt: GraphRuntime, kernel: WeightKernel, raw: Uint8Array): RawTensor {
  const [n, k] = kernel.shape;
  const [pn, pk] = kernel.view.padded;
  // Raw bf16 bits: widened inside the graphs on CUDA, by lookup in the CPU loops.
  if ((rt.decodeBf16InGraph || inLoops(rt, kernel)) && kernel.dtype === 'BF16' && pn === n && pk === k) {
    return { type: 'uint16', data: uint16View(raw), dims: kernel.view.dims };
  }
  const weight = toFloat32(raw, kernel.dtype);
  if (pn === n && pk === k) return f32(weight, kernel.view.dims);
  const padded = new Float32Array(pn * pk);
  for (let r = 0; r < n; r++) padded.set(weight.subarray(r * k, (r + 1) * k), r * pk);
  return f32(padded, kernel.view.dims);
}

/**
 * Row ranges of the group view run one at a time. Row-independent strategies
 * (channel, group, tensor_group) are split into slices of at most
 * `rt.chunkElements`; tensor and block strategies run whole.
 */
export function rowChunks(rt: GraphRuntime, kernel: WeightKernel): [number, number][] {
  const rows = kernel.view.dims[0];
  const s = kernel.args.strategy;
  if (rt.chunkElements === null || (s !== 'channel' && s !== 'group' && s !== 'tensor_group')) return [[0, rows]];
  const per = Math.max(1, Math.floor(rt.chunkElements / kernel.shape[1]));
  const out: [number, number][] = [];
  for (let r = 0; r < rows; r += per) out.push([r, Math.min(rows, r + per)]);
  return out;
}

function rowSlice(t: RawTensor, r0: number, r1: number): RawTensor {
  const perRow = t.dims.slice(1).reduce((a, b) => a * b, 1);
  return { type: t.type, data: (t.data as Float32Array).subarray(r0 * perRow, r1 * perRow), dims: [r1 - r0, ...t.dims.slice(1)] };
}

/** Runs the observer graph: min and max per scale group. */
export async function observeWeight(rt: GraphRuntime, kernel: WeightKernel, grouped: RawTensor): Promise<WeightStats> {
  const rank = kernel.view.dims.length as 3 | 4;
  const input = grouped.type === 'uint16' ? 'bf16-bits' : 'f32';
  if (inLoops(rt, kernel)) {
    if (grouped.type !== 'uint16') return observeCpu(kernel, grouped.data as Float32Array);
    // Symmetric scales need only each group's largest magnitude.
    if (kernel.view.dims.length === 4) return observeBlockAbsBf16Cpu(kernel, grouped.data as Uint16Array);
    return kernel.args.symmetric ? observeAbsBf16Cpu(kernel, grouped.data as Uint16Array) : observeBf16Cpu(kernel, grouped.data as Uint16Array);
  }
  const key = `observe-${rank}-${input}`;
  const chunks = rowChunks(rt, kernel);
  if (chunks.length === 1) {
    const out = await rt.run(key, () => observeGraph(rank, kernel.view.reduceAxes, input), { w: grouped });
    return { min: out.min.data as Float32Array, max: out.max.data as Float32Array };
  }
  const groups = kernel.view.dims[1];
  const min = new Float32Array(kernel.view.dims[0] * groups);
  const max = new Float32Array(min.length);
  for (const [r0, r1] of chunks) {
    const out = await rt.run(key, () => observeGraph(rank, kernel.view.reduceAxes, input), { w: rowSlice(grouped, r0, r1) });
    min.set(out.min.data as Float32Array, r0 * groups);
    max.set(out.max.data as Float32Array, r0 * groups);
  }
  return { min, max };
}

/**
 * Whether the observer's statistics show every NaN and infinity of the
 * weight: the CPU loops order raw bf16 patterns as integers, so one lands
 * in a group's min or max (graph reductions may skip NaN).
 */
export function observerSeesNonFinite(rt: GraphRuntime, kernel: WeightKernel, grouped: RawTensor): boolean {
  return grouped.type === 'uint16' && inLoops(rt, kernel);
}

/** The largest of 16-bit values (0 for none). */
function largest(values: Uint16Array): number {
  let m = 0;
  for (let i = 0; i < values.length; i++) if (values[i]! > m) m = values[i]!;
  return m;
}

/** Whether every min and max is finite. */
export function statsFinite(stats: WeightStats): boolean {
  if (stats.absBits) return largest(stats.absBits) < 0x7f80;
  for (let i = 0; i < stats.min.length; i++) if (!Number.isFinite(stats.min[i]! + stats.max[i]!)) return false;
  return true;
}

/** Absolute maximum over a weight's statistics (for NVFP4 global scales). */
export function statsAbsMax(stats: WeightStats): number {
  if (stats.absBits) return new Float32Array(Uint32Array.of(largest(stats.absBits) << 16).buffer)[0]!;
  let m = 0;
  for (let i = 0; i < stats.min.length; i++) m = Math.max(m, -stats.min[i], stats.max[i]);
  return m;
}

/** The NVFP4 global scale shared by a fused group, from each member's statistics. */
export function fusedGlobalScale(members: readonly WeightStats[], kernel: WeightKernel): number {
  return nvfp4GlobalScale(Math.max(...members.map(statsAbsMax)), kernel.dtype);
}

function scaleDims(kernel: WeightKernel): number[] {
  const d = kernel.view.dims;
  return d.length === 3 ? [d[0], d[1], 1] : [d[0], 1, d[2], 1];
}

function crop(values: Float32Array, kernel: WeightKernel): Float32Array {
  const [n, k] = kernel.shape;
  const [pn, pk] = kernel.view.padded;
  if (pn === n && pk === k) return values;
  const out = new Float32Array(n * k);
  for (let r = 0; r < n; r++) out.set(values.subarray(r * pk, r * pk + k), r * k);
  return out;
}

function concatRows(parts: readonly RawTensor[]): RawTensor {
  const first = parts[0];
  const total = parts.reduce((a, p) => a + p.data.length, 0);
  const Ctor = first.data.constructor as new (n: number) => Float32Array;
  const data = new Ctor(total);
  let at = 0;
  for (const p of parts) {
    data.set(p.data as Float32Array, at);
    at += p.data.length;
  }
  return { type: first.type, data, dims: [parts.reduce((a, p) => a + p.dims[0], 0), ...first.dims.slice(1)] };
}

function cropBytes(values: Uint8Array, kernel: WeightKernel): Uint8Array {
  const [n, k] = kernel.shape;
  const [pn, pk] = kernel.view.padded;
  if (pn === n && pk === k) return values;
  const out = new Uint8Array(n * k);
  for (let r = 0; r < n; r++) out.set(values.subarray(r * pk, r * pk + k), r * k);
  return out;
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Packs `rows × cols` signed `bits`-bit values into int32 words per row as
 * compressed-tensors `pack_to_int32` does: offset to unsigned, element c at
 * bit c·bits of the row (a value may straddle two words), ceil(cols·bits/32)
 * words per row.
 */
export function packInt32(values: ArrayLike<number>, rows: number, cols: number, bits: number): Int32Array {
  const words = Math.ceil((cols * bits) / 32);
  const out = new Int32Array(rows * words);
  const offset = 1 << (bits - 1);
  const mask = (1 << bits) - 1;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const v = (values[r * cols + c] + offset) & mask;
      const pos = c * bits;
      const w = r * words + (pos >>> 5);
      const shift = pos & 31;
      out[w] |= v << shift;
      if (shift + bits > 32) out[w + 1] |= v >>> (32 - shift);
    }
  }
  return out;
}

/** Packs zero points `[N, G]` into int32 along dim 0, as `pack_to_int32(..., packed_dim=0)`: `[ceil(N·bits/32), G]`. */
export function packZeroPoints(zp: Float32Array, n: number, groups: number, bits: number): Int32Array {
  const transposed = new Float32Array(n * groups);
  for (let r = 0; r < n; r++) for (let g = 0; g < groups; g++) transposed[g * n + r] = zp[r * groups + g];
  const packed = packInt32(transposed, groups, n, bits);
  const words = packed.length / groups;
  const out = new Int32Array(packed.length);
  for (let g = 0; g < groups; g++) for (let w = 0; w < words; w++) out[w * groups + g] = packed[g * words + w];
  return out;
}

/**
 * Quantizes one weight. `globalScale` is required for NVFP4 (shared across a
 * fused group). Returns bytes per output suffix, matching `kernel.outputs`.
 */
export async function quantizeWeight(rt: GraphRuntime, kernel: WeightKernel, grouped: RawTensor, stats: WeightStats, globalScale?: number): Promise<Map<string, Uint8Array>> {
  const result = new Map<string, Uint8Array>();
  const [n, k] = kernel.shape;
  const rank = kernel.view.dims.length as 3 | 4;
  const sd = scaleDims(kernel);
  const args = kernel.args;
  const input = grouped.type === 'uint16' ? 'bf16-bits' : 'f32';
  const base = { kind: kernel.kind, dtype: kernel.dtype, rank, bits: args.num_bits, pack: false, asymmetric: false, input } as const;
  const chunks = rowChunks(rt, kernel);
  const loops = inLoops(rt, kernel);
  // Runs the graph per row chunk; `feeds` holds whole-weight tensors (sliced by rows here, except `pshape`).
  const run = async (key: string, opts: QuantizeGraphOptions, feeds: Record<string, RawTensor>): Promise<RawTensor> => {
    const graphKey = `quantize-${key}-${opts.dtype}-${rank}-${opts.input}`;
    const build = (): Uint8Array => quantizeGraph(opts);
    if (chunks.length === 1) return (await rt.run(graphKey, build, { w: grouped, ...feeds })).q;
    const parts: RawTensor[] = [];
    for (const [r0, r1] of chunks) {
      const f: Record<string, RawTensor> = { w: rowSlice(grouped, r0, r1) };
      for (const [name, t] of Object.entries(feeds)) {
        if (name !== 'pshape') f[name] = name === 'gs' ? t : rowSlice(t, r0, r1);
        else f[name] = { ...t, data: BigInt64Array.from([BigInt(r1 - r0), ...(t.data as BigInt64Array).slice(1)]) };
      }
      parts.push((await rt.run(graphKey, build, f)).q);
    }
    return concatRows(parts);
  };

  switch (kernel.kind) {
    case 'int': {
      const { scale, zeroPoint } = intQparams(stats.min, stats.max, args.num_bits, args.symmetric, kernel.dtype);
      const feeds: Record<string, RawTensor> = { s: f32(scale, sd) };
      if (zeroPoint) feeds.zp = f32(zeroPoint, sd);
      const asymmetric = zeroPoint !== null;
      const packed = kernel.format === 'pack-quantized';
      let q: Uint8Array;
      if (loops) {
        // Raw bf16 (see cpuKernelSupports).
        q = bytesOf(quantizeIntBf16Table(kernel, grouped.data as Uint16Array, scale, zeroPoint));
      } else if (packed && 32 % args.num_bits !== 0) {
        // Widths that straddle words (3, 5, 6, 7 bits): quantize in the graph, pack here.
        const codes = await run(`int${args.num_bits}${asymmetric ? 'a' : 's'}`, { ...base, asymmetric }, feeds);
        q = bytesOf(packInt32(codes.data as Int8Array, n, k, args.num_bits));
      } else if (packed) {
        const per = 32 / args.num_bits;
        feeds.pshape = { type: 'int64', data: BigInt64Array.from([BigInt(n), BigInt(k / per), BigInt(per)]), dims: [3] };
        q = bytesOf((await run(`int${args.num_bits}p${asymmetric ? 'a' : 's'}`, { ...base, pack: true, asymmetric }, feeds)).data);
      } else q = bytesOf((await run(`int${args.num_bits}${asymmetric ? 'a' : 's'}`, { ...base, asymmetric }, feeds)).data);
      if (packed) {
        result.set('weight_packed', q);
        result.set('weight_shape', bytesOf(BigInt64Array.from([BigInt(n), BigInt(k)])));
        if (zeroPoint && kernel.outputs.some((o) => o.suffix === 'weight_zero_point')) {
          result.set('weight_zero_point', bytesOf(packZeroPoints(zeroPoint, n, scale.length / n, args.num_bits)));
        }
      } else {
        result.set('weight', q);
        if (zeroPoint) result.set('weight_zero_point', bytesOf(Int8Array.from(zeroPoint)));
      }
      result.set('weight_scale', scaleBytes(scale, kernel));
      break;
    }
    case 'fp8': {
      const scale = fp8Qparams(stats.min, stats.max, kernel.dtype);
      if (loops) {
        result.set('weight', loopFp8(kernel, grouped, scale));
        result.set('weight_scale', scaleBytes(scale, kernel));
        break;
      }
      const q = await run(rt.encodeFp8InGraph ? 'fp8c' : 'fp8', { ...base, fp8Codes: rt.encodeFp8InGraph }, { s: f32(scale, sd) });
      result.set('weight', rt.encodeFp8InGraph ? cropBytes(q.data as Uint8Array, kernel) : fp8E4m3Bytes(crop(q.data as Float32Array, kernel)));
      result.set('weight_scale', scaleBytes(scale, kernel));
      break;
    }
    case 'mxfp8':
    case 'mxfp4': {
      const { exponent, scale } = mxQparams(stats.min, stats.max, kernel.kind === 'mxfp4' ? 4 : 8, kernel.dtype);
      if (loops && kernel.kind === 'mxfp8') {
        result.set('weight', loopFp8(kernel, grouped, scale));
      } else if (loops) {
        result.set('weight_packed', quantizeMxfp4Bf16Table(kernel, grouped.data as Uint16Array, scale));
      } else if (kernel.kind === 'mxfp8') {
        const q = await run(rt.encodeFp8InGraph ? 'mxfp8c' : 'mxfp8', { ...base, fp8Codes: rt.encodeFp8InGraph }, { s: f32(scale, sd) });
        result.set('weight', rt.encodeFp8InGraph ? (q.data as Uint8Array) : fp8E4m3Bytes(q.data as Float32Array));
      } else {
        const pshape: RawTensor = { type: 'int64', data: BigInt64Array.from([BigInt(n), BigInt(k / 2), 2n]), dims: [3] };
        const q = await run('mxfp4', base, { s: f32(scale, sd), pshape });
        result.set('weight_packed', bytesOf(q.data));
      }
      result.set('weight_scale', exponent);
      break;
    }
    case 'nvfp4': {
      if (globalScale === undefined) throw new Error('NVFP4 needs a global scale');
      result.set('weight_global_scale', bytesOf(Float32Array.of(globalScale)));
      if (loops) {
        // The loops observe NVFP4 (symmetric) as each group's largest magnitude bits: scales are looked up by them.
        if (!stats.absBits) throw new Error('NVFP4 in the CPU loops needs the loops\' statistics');
        const { scaleBytes, divisor } = nvfp4ScalesOfAbsBits(stats.absBits, globalScale, kernel.dtype);
        result.set('weight_packed', quantizeNvfp4Bf16Cpu(kernel, grouped.data as Uint16Array, divisor));
        result.set('weight_scale', scaleBytes);
        break;
      }
      const scale = nvfp4Qparams(stats.min, stats.max, globalScale, kernel.dtype);
      const pshape: RawTensor = { type: 'int64', data: BigInt64Array.from([BigInt(n), BigInt(k / 2), 2n]), dims: [3] };
      const q = await run('nvfp4', base, { s: f32(scale, sd), gs: f32(Float32Array.of(globalScale), [1]), pshape });
      result.set('weight_packed', bytesOf(q.data));
      result.set('weight_scale', fp8E4m3Bytes(scale));
      break;
    }
  }
  return result;
}

/**
 * Whether one graph observes and quantizes the weight (see
 * `QuantizeGraphOptions.inGraphScale`): symmetric FP8 and integer weights
 * with scale groups along rows, where they run in graphs.
 */
export function observesInGraph(rt: GraphRuntime, kernel: WeightKernel): boolean {
  if (inLoops(rt, kernel) || kernel.view.dims.length !== 3) return false;
  if (kernel.kind === 'fp8') return true;
  return kernel.kind === 'int' && kernel.args.symmetric && (kernel.format !== 'pack-quantized' || 32 % kernel.args.num_bits === 0);
}

/**
 * Observes, scales, quantizes and packs a weight in one graph per row
 * chunk (one upload; see {@link observesInGraph}). Returns bytes per output
 * suffix, matching `kernel.outputs`, as {@link quantizeWeight} would.
 */
export async function quantizeObserved(rt: GraphRuntime, kernel: WeightKernel, grouped: RawTensor): Promise<Map<string, Uint8Array>> {
  const [n, k] = kernel.shape;
  const args = kernel.args;
  const fp8 = kernel.kind === 'fp8';
  const pack = kernel.format === 'pack-quantized';
  const per = 32 / args.num_bits;
  const opts: QuantizeGraphOptions = {
    kind: kernel.kind,
    dtype: kernel.dtype,
    rank: 3,
    bits: args.num_bits,
    pack,
    asymmetric: false,
    input: grouped.type === 'uint16' ? 'bf16-bits' : 'f32',
    fp8Codes: fp8 && rt.encodeFp8InGraph,
    inGraphScale: { divisor: fp8 ? 448 : (2 ** args.num_bits - 1) / 2, eps: dtypeFacts(kernel.dtype).eps },
  };
  const key = `observe-quantize-${fp8 ? (opts.fp8Codes ? 'fp8c' : 'fp8') : `int${args.num_bits}${pack ? 'p' : ''}`}-${opts.dtype}-${opts.input}`;
  const qs: RawTensor[] = [];
  const ss: RawTensor[] = [];
  const chunks = rowChunks(rt, kernel);
  for (const [r0, r1] of chunks) {
    const feeds: Record<string, RawTensor> = { w: chunks.length === 1 ? grouped : rowSlice(grouped, r0, r1) };
    if (pack) feeds.pshape = { type: 'int64', data: BigInt64Array.from([BigInt(chunks.length === 1 ? n : r1 - r0), BigInt(k / per), BigInt(per)]), dims: [3] };
    const out = await rt.run(key, () => quantizeGraph(opts), feeds);
    qs.push(out.q);
    ss.push(out.s);
  }
  const q = qs.length === 1 ? qs[0] : concatRows(qs);
  const scale = (ss.length === 1 ? ss[0] : concatRows(ss)).data as Float32Array;
  const result = new Map<string, Uint8Array>();
  if (fp8) result.set('weight', opts.fp8Codes ? (q.data as Uint8Array) : fp8E4m3Bytes(q.data as Float32Array));
  else if (pack) {
    result.set('weight_packed', bytesOf(q.data));
    result.set('weight_shape', bytesOf(BigInt64Array.from([BigInt(n), BigInt(k)])));
  } else result.set('weight', bytesOf(q.data));
  result.set('weight_scale', scaleBytes(scale, kernel));
  return result;
}

/**
 * The key under which weights can be stacked into one graph run (same
 * kernel, shape and dtype; whole weights, row-independent scale groups), or
 * null for a weight that runs alone.
 */
export function stackKey(rt: GraphRuntime, kernel: WeightKernel): string | null {
  const s = kernel.args.strategy;
  if (rt.chunkElements !== null || !observesInGraph(rt, kernel) || (s !== 'channel' && s !== 'group')) return null;
  return JSON.stringify([kernel.kind, kernel.format, kernel.dtype, kernel.shape, kernel.args.num_bits, s, kernel.args.group_size]);
}

/**
 * Quantizes weights of one {@link stackKey} in one graph run: their rows
 * stacked into one `[count·N, K]` weight (scale groups never cross rows, so
 * each weight's codes and scales are what it gets alone), split back after.
 */
export async function quantizeObservedStack(rt: GraphRuntime, kernel: WeightKernel, raws: readonly Uint8Array[]): Promise<Map<string, Uint8Array>[]> {
  if (raws.length === 1) return [await quantizeObserved(rt, kernel, groupedWeight(rt, kernel, raws[0]!))];
  const count = raws.length;
  const [n, k] = kernel.shape;
  const [a, b, c] = kernel.view.dims as [number, number, number];
  const stacked: WeightKernel = { ...kernel, shape: [count * n, k], view: { ...kernel.view, dims: [count * a, b, c], padded: [count * n, k] } };
  const all = new Uint8Array(raws.reduce((t, r) => t + r.byteLength, 0));
  let at = 0;
  for (const r of raws) {
    all.set(r, at);
    at += r.byteLength;
  }
  const together = await quantizeObserved(rt, stacked, groupedWeight(rt, stacked, all));
  return raws.map((_, i) => {
    const one = new Map<string, Uint8Array>();
    for (const [suffix, bytes] of together) {
      if (suffix === 'weight_shape') one.set(suffix, bytesOf(BigInt64Array.from([BigInt(n), BigInt(k)])));
      else {
        const part = bytes.byteLength / count;
        one.set(suffix, bytes.subarray(i * part, (i + 1) * part));
      }
    }
    return one;
  });
}

function scaleBytes(scale: Float32Array, kernel: WeightKernel): Uint8Array {
  if (kernel.dtype === 'BF16') return bf16Bytes(scale);
  return kernel.dtype === 'F16' ? f16Bytes(scale) : bytesOf(scale);
}
