/**
 * Fake quantization of Linear inputs when a checkpoint is run as served
 * (`eval --simulate activations`): a weight handed to a graph may carry the
 * quantizer of its module's input, which {@link linear} applies to the
 * input before the MatMul. Plain runs attach none.
 */
import type { GraphBuilder } from '../onnx/graph-builder.js';

/** Maps a Linear input to its fake-quantized value inside graph `g`. */
export type InputQuantizer = (g: GraphBuilder, x: string) => string;

/**
 * A Linear's input quantizer for a graph that sees only a slice of the
 * input's columns (an MLP split across graphs): `align` is the column
 * multiple a slice must keep (1 for per-tensor scales, the group size for
 * group scales).
 */
export interface SliceQuantizer {
  readonly quantize: InputQuantizer;
  readonly align: number;
}

/**
 * Which part of a Linear's input a graph quantizes on its own: all of it,
 * a slice of its columns (an MLP split across graphs), or every token where
 * the Linear sees only those routed to it (an expert run on all tokens).
 */
export type InputPart = 'whole' | 'column-slice' | 'all-tokens';

const attached = new WeakMap<object, InputQuantizer>();

/** Attaches `q` to the weight object `weight` (as returned by the weight reader). */
export function attachInputQuantizer(weight: object, q: InputQuantizer): void {
  attached.set(weight, q);
}

/** `x` as the Linear holding `weight` sees it: fake-quantized when a quantizer is attached, else unchanged. */
export function quantizedInput(g: GraphBuilder, x: string, weight: object): string {
  const q = attached.get(weight);
  return q ? q(g, x) : x;
}
