/**
 * GPTQ's layer-wise objective, `tr(ΔW·H·ΔWᵀ)`: how much a quantized weight
 * changes the layer's outputs on the calibration inputs summarized by `H`.
 * It is what equally valid GPTQ runs agree on (their integer codes do not),
 * so results are compared on it.
 */

/** `Σ_r ΔW_r · H · ΔW_rᵀ` for `[rows, cols]` weights and a `[cols, cols]` Hessian, in float64. */
export function layerObjective(original: ArrayLike<number>, quantized: ArrayLike<number>, hessian: ArrayLike<number>, rows: number, cols: number): number {
  const d = new Float64Array(cols);
  let total = 0;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) d[c] = original[r * cols + c]! - quantized[r * cols + c]!;
    for (let i = 0; i < cols; i++) {
      if (d[i] === 0) continue;
      let s = 0;
      for (let j = 0; j < cols; j++) s += hessian[i * cols + j]! * d[j]!;
      total += d[i]! * s;
    }
  }
  return total;
}
