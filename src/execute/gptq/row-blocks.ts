/**
 * GPTQ in blocks of rows. Once the scales are observed on the whole
 * original weight, GPTQ's rows are independent (the error of a column only
 * moves later columns of the same row), so a tall weight — `lm_head` is
 * `[vocab, hidden]`, 128k rows and more — is solved a block at a time: the
 * column-major copy and the update temporaries of the solve then hold one
 * block, not the whole weight. The result is the whole weight's.
 */
import { concatFloat32 } from '../dtypes.js';
import type { GemmEngine } from './gemm.js';
import { prepareHessian, orderingOf, solveGptq, type GptqProblem, type GptqSettings, type GptqSolution, type PreparedHessian } from './solve.js';
import { scaleLayout } from './weight-qparams.js';

/** Default bound on one block's float32 weight rows. */
export const ROW_BLOCK_BYTES = 1 << 30;

/** Solves `p` in blocks of at most `bytes` of float32 rows (aligned to the scale rows); one block when it fits. */
export async function solveByRowBlocks(p: GptqProblem, settings: GptqSettings, gemm: GemmEngine, prepared?: PreparedHessian, bytes = ROW_BLOCK_BYTES): Promise<GptqSolution> {
  const { rows: R, cols: K } = p;
  const layout = scaleLayout(p.args, R, K);
  // One scale for the whole tensor: every block keeps the whole weight's statistics.
  const whole = layout.height >= R;
  const height = whole ? 1 : layout.height;
  const step = Math.max(height, Math.floor(Math.floor(bytes / (4 * K)) / height) * height);
  if (step >= R) return solveGptq(p, settings, gemm, prepared);
  const prep = prepared ?? (await prepareHessian(p.hessian, K, orderingOf(p.args), settings, gemm));
  const weight = new Float32Array(R * K);
  const scales: Float32Array[] = [];
  const zeros: Float32Array[] = [];
  let loss = 0;
  let fellBack = false;
  let last: GptqSolution | undefined;
  for (let r0 = 0; r0 < R; r0 += step) {
    const r1 = Math.min(R, r0 + step);
    const g0 = (r0 / height) * layout.groups;
    const g1 = Math.ceil(r1 / height) * layout.groups;
    const stats = whole ? p.stats : { min: p.stats.min.subarray(g0, g1), max: p.stats.max.subarray(g0, g1) };
    const s = await solveGptq({ ...p, weight: p.weight.subarray(r0 * K, r1 * K), rows: r1 - r0, stats }, settings, gemm, prep);
    weight.set(s.weight, r0 * K);
    loss += s.loss;
    fellBack ||= s.fellBack;
    scales.push(s.qparams.scale);
    if (s.qparams.zeroPoint) zeros.push(s.qparams.zeroPoint);
    last = s;
  }
  const q = last!.qparams;
  const qparams = whole ? { ...q, layout } : { ...q, layout, scale: concatFloat32(scales), zeroPoint: q.zeroPoint ? concatFloat32(zeros) : null };
  return { weight, loss, fellBack, qparams, gIdx: last!.gIdx };
}
