/**
 * bf16 bit patterns made and read inside graphs (onnx/bf16-bits.ts): every
 * one of the 65,536 patterns decodes to its value and encodes back, and
 * float32 values encode as bfloat16 rounds them (to nearest even).
 */
import { describe, expect, it } from 'vitest';
import { decodeBf16Bits, encodeBf16Bits } from '../../../src/execute/onnx/bf16-bits.js';
import { GraphBuilder, OnnxType } from '../../../src/execute/onnx/graph-builder.js';
import { GraphRuntime } from '../../../src/execute/runtime.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The float32 value of bf16 pattern `b`. */
function valueOf(b: number): number {
  u32[0] = b << 16;
  return f32[0]!;
}

/** The bf16 pattern of float32 `x` rounded to nearest even; NaN canonical, zero unsigned (as the graph encodes). */
function patternOf(x: number): number {
  f32[0] = x;
  const bits = u32[0]!;
  if (Number.isNaN(f32[0]!)) return 0x7fc0;
  if ((bits & 0x7f800000) === 0x7f800000) return bits >>> 16;
  const p = ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
  return (p & 0x7fff) === 0 ? 0 : p;
}

async function run(build: (g: GraphBuilder, x: string) => string, input: Float32Array | Uint16Array, outType: number): Promise<Float32Array | Uint16Array> {
  const g = new GraphBuilder();
  const x = g.input('x', input instanceof Float32Array ? OnnxType.float : OnnxType.uint16, ['n']);
  g.output(build(g, x), 'y', outType as never, ['n']);
  const rt = new GraphRuntime('cpu');
  try {
    const { y } = await rt.run('bits', () => g.build('bits'), { x: { type: input instanceof Float32Array ? 'float32' : 'uint16', data: input, dims: [input.length] } });
    return y!.data as Float32Array | Uint16Array;
  } finally {
    await rt.dispose();
  }
}

describe('bf16 bit patterns in graphs', () => {
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i);

  it('decodes every pattern to its value, infinities and NaN included', async () => {
    const got = (await run(decodeBf16Bits, all, OnnxType.float)) as Float32Array;
    for (let b = 0; b < 65536; b++) {
      const want = valueOf(b);
      if (Number.isNaN(want)) expect(Number.isNaN(got[b]!), `0x${b.toString(16)}`).toBe(true);
      else if (got[b] !== want) expect(got[b], `0x${b.toString(16)}`).toBe(want);
    }
  });

  it('encodes every bf16 value back to its pattern (NaN canonical, zero unsigned)', async () => {
    const values = Float32Array.from(all, valueOf);
    const got = (await run(encodeBf16Bits, values, OnnxType.uint16)) as Uint16Array;
    for (let b = 0; b < 65536; b++) if (got[b] !== patternOf(values[b]!)) expect(got[b], `0x${b.toString(16)}`).toBe(patternOf(values[b]!));
  });

  it('encodes float32 values as bfloat16 rounds them, to nearest even', async () => {
    let s = 7;
    const next = (): number => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0);
    const values = new Float32Array(100_000);
    for (let i = 0; i < values.length; i++) {
      u32[0] = next();
      values[i] = f32[0]!;
    }
    // Ties: the 16 dropped bits exactly half.
    for (let i = 0; i < 1000; i++) {
      u32[0] = ((next() & 0xffff0000) | 0x8000) >>> 0;
      values[i] = f32[0]!;
    }
    const got = (await run(encodeBf16Bits, values, OnnxType.uint16)) as Uint16Array;
    for (let i = 0; i < values.length; i++) if (got[i] !== patternOf(values[i]!)) expect(got[i], String(values[i])).toBe(patternOf(values[i]!));
  });
});
