/**
 * Writing a weight GPTQ solved with group activation ordering
 * (`actorder: group`): its scales follow the permuted column grouping, so
 * column `c` uses scale group `weight_g_idx[c]`, which is saved next to it.
 * The codes are recovered as compressed-tensors' compressor recovers them:
 * the stored (dequantized, model-dtype) weight divided by the stored scale
 * of each column's group, in the model dtype.
 */
import { bf16Bytes, f16Bytes, toFloat32 } from '../dtypes.js';
import { dtypeFacts, roundHalfEven } from '../rtn/qparams.js';
import { packInt32, packZeroPoints } from '../rtn/quantize-weight.js';
import type { WeightKernel } from '../rtn/weight-kernel.js';
import type { SolvedWeight } from '../types.js';

/** `kernel` plus the `weight_g_idx` tensor, outputs kept in name order. */
export function withGroupIndex(kernel: WeightKernel): WeightKernel {
  if (kernel.kind !== 'int') throw new Error('group activation ordering is supported for integer weights only (compressed-tensors cannot save it for NVFP4)');
  const gIdx = { suffix: 'weight_g_idx', dtype: 'I32' as const, shape: [kernel.shape[1]], byteLength: 4 * kernel.shape[1] };
  return { ...kernel, outputs: [...kernel.outputs, gIdx].sort((a, b) => (a.suffix < b.suffix ? -1 : 1)) };
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** The tensors of a group-ordered integer weight, by suffix in `kernel.outputs` order. */
export function groupOrderedTensors(kernel: WeightKernel, solved: SolvedWeight): Map<string, Uint8Array> {
  const [n, k] = kernel.shape;
  const q = solved.qparams!;
  const gIdx = solved.gIdx!;
  const groups = q.layout.groups;
  const { round } = dtypeFacts(kernel.dtype);
  // Stored scales: the float32 scales the loop used, cast to the model dtype.
  const scale = Float32Array.from(q.scale, round);
  const w = toFloat32(solved.bytes, solved.dtype);
  const codes = new Int8Array(n * k);
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < k; c++) {
      const i = r * groups + gIdx[c]!;
      let y = round(Math.fround(w[r * k + c]! / scale[i]!));
      if (q.zeroPoint) y = round(Math.fround(y + q.zeroPoint[i]!));
      codes[r * k + c] = roundHalfEven(Math.min(Math.max(y, q.qmin), q.qmax));
    }
  }
  const out = new Map<string, Uint8Array>();
  const bits = kernel.args.num_bits;
  if (kernel.format === 'pack-quantized') {
    out.set('weight_packed', bytesOf(packInt32(codes, n, k, bits)));
    out.set('weight_shape', bytesOf(BigInt64Array.from([BigInt(n), BigInt(k)])));
    if (q.zeroPoint) out.set('weight_zero_point', bytesOf(packZeroPoints(q.zeroPoint, n, groups, bits)));
  } else {
    out.set('weight', bytesOf(codes));
    if (q.zeroPoint) out.set('weight_zero_point', bytesOf(Int8Array.from(q.zeroPoint)));
  }
  out.set('weight_scale', kernel.dtype === 'BF16' ? bf16Bytes(scale) : kernel.dtype === 'F16' ? f16Bytes(scale) : bytesOf(scale));
  out.set('weight_g_idx', bytesOf(gIdx));
  return new Map(kernel.outputs.map((o) => [o.suffix, out.get(o.suffix)!]));
}
