/**
 * Which decoder-layer graph each `model_type` gets. An architecture not
 * listed here cannot be run (an error naming the ones that can).
 */
import { LLAMA_LIKE, UnsupportedModelError, type DecoderConfig } from './decoder-config.js';
import { llamaLayer, type LayerOptions, type LayerProgram } from './llama-layer.js';
import { blockSparseMoeLayer } from './block-sparse-moe-layer.js';
import { gptOssLayer } from './gpt-oss-layer.js';
import { llama4Layer } from './llama4-layer.js';
import { sigmoidMoeLayer } from './mla-layer.js';
import { checkIndexers, glmMoeDsaLayer } from './dsa-layer.js';
import { qwen3NextLayer } from './qwen3-next-layer.js';
import { softmaxMoeLayer } from './softmax-moe-layer.js';
import type { WeightReader } from './weights.js';

/** Builds the ONNX graph of one decoder layer. */
export type LayerBuilder = (w: WeightReader, cfg: DecoderConfig, layer: number, raw: Readonly<Record<string, unknown>>, options?: LayerOptions) => Promise<LayerProgram>;

const BUILDERS: ReadonlyMap<string, LayerBuilder> = new Map<string, LayerBuilder>([
  ...[...LLAMA_LIKE].map((t): [string, LayerBuilder] => [t, (w, cfg, layer, _raw, options) => llamaLayer(w, cfg, layer, options)]),
  ['qwen3_moe', softmaxMoeLayer],
  ['qwen2_moe', softmaxMoeLayer],
  ['mixtral', softmaxMoeLayer],
  // OLMoE: the qwen3_moe block behind q/k norms over whole projections.
  ['olmoe', softmaxMoeLayer],
  ['granitemoe', blockSparseMoeLayer],
  ['phimoe', blockSparseMoeLayer],
  ['qwen3_next', qwen3NextLayer],
  ['glm_moe_dsa', glmMoeDsaLayer],
  ['glm4_moe_lite', sigmoidMoeLayer],
  ['glm4_moe', sigmoidMoeLayer],
  ['deepseek_v3', sigmoidMoeLayer],
  // Kimi-K2 ships the DeepSeek-V3 architecture under its own model_type (remote code).
  ['kimi_k2', sigmoidMoeLayer],
  ['gpt_oss', gptOssLayer],
  ['llama4_text', llama4Layer],
]);

/** Configs of a runnable model_type that the executor still refuses (the check throws). */
const CHECKS: ReadonlyMap<string, (raw: Readonly<Record<string, unknown>>) => void> = new Map([['glm_moe_dsa', checkIndexers]]);

/** model_type values the executor runs. */
export function runnableModelTypes(): string[] {
  return [...BUILDERS.keys()].sort();
}

/** The layer builder for a config, or an error naming the supported model types. */
export function layerBuilderFor(raw: Readonly<Record<string, unknown>>): LayerBuilder {
  const type = String(raw.model_type ?? '');
  const b = BUILDERS.get(type);
  if (!b) throw new UnsupportedModelError(`model_type "${type}" cannot be run by the forward executor yet (supported: ${runnableModelTypes().join(', ')})`);
  CHECKS.get(type)?.(raw);
  return b;
}
