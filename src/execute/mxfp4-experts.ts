/**
 * gpt-oss experts as OpenAI publishes them: MXFP4-packed `<param>_blocks
 * [E, out, in/32, 16]` (two FP4 E2M1 codes a byte, the low nibble first)
 * and `<param>_scales [E, out, in/32]` (E8M0 exponents, bias 127), decoded
 * as transformers' `convert_moe_packed_tensors` does when it loads them
 * dequantized (`Mxfp4Config(dequantize=True)`, what llm-compressor loads):
 * `code · 2^(scale − 127)`, exact in bf16.
 */
import { open } from 'node:fs/promises';
import type { CheckpointIndex, TensorEntry } from './safetensors-reader.js';

/** FP4 E2M1 values by code (transformers' `FP4_VALUES`). */
const FP4 = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6];

/** The packed tensors of fused parameter `param` (e.g. `…experts.gate_up_proj`), or null when it is not stored MXFP4-packed. */
export interface Mxfp4Param {
  readonly blocks: TensorEntry;
  readonly scales: TensorEntry;
  readonly experts: number;
  /** Output rows per expert. */
  readonly rows: number;
  /** Input columns per expert. */
  readonly cols: number;
}

/** Finds `<param>_blocks` / `<param>_scales` with consistent shapes. */
export function mxfp4Param(index: CheckpointIndex, param: string): Mxfp4Param | null {
  const blocks = index.tensors.get(`${param}_blocks`);
  const scales = index.tensors.get(`${param}_scales`);
  if (!blocks || !scales || blocks.shape.length !== 4 || scales.shape.length !== 3 || blocks.shape[3] !== 16) return null;
  const [e, rows, groups] = blocks.shape as [number, number, number];
  if (scales.shape[0] !== e || scales.shape[1] !== rows || scales.shape[2] !== groups) return null;
  return { blocks, scales, experts: e, rows, cols: groups * 32 };
}

async function readRange(entry: TensorEntry, offset: number, length: number): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  const fh = await open(entry.file, 'r');
  try {
    let done = 0;
    while (done < length) {
      const { bytesRead } = await fh.read(buf, done, length - done, entry.offset + offset + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return buf;
}

/** Rows `[row, row + count)` of expert `expert`, decoded to a row-major `[count, cols]` float32 matrix. */
export async function decodeMxfp4Rows(p: Mxfp4Param, expert: number, row: number, count: number): Promise<Float32Array> {
  const groups = p.cols / 32;
  const blocks = await readRange(p.blocks, (expert * p.rows + row) * groups * 16, count * groups * 16);
  const scales = await readRange(p.scales, (expert * p.rows + row) * groups, count * groups);
  const out = new Float32Array(count * p.cols);
  for (let g = 0; g < count * groups; g++) {
    const scale = 2 ** (scales[g]! - 127);
    for (let b = 0; b < 16; b++) {
      const byte = blocks[g * 16 + b]!;
      out[g * 32 + 2 * b] = FP4[byte & 0x0f]! * scale;
      out[g * 32 + 2 * b + 1] = FP4[byte >> 4]! * scale;
    }
  }
  return out;
}

/** Float32 values (exact in bf16) as little-endian bf16 bytes. */
export function bf16Bytes(values: Float32Array): Uint8Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = bits[i]! >>> 16;
  return new Uint8Array(out.buffer);
}
