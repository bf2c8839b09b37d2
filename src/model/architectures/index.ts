/**
 * The registry of architecture descriptors and the one entry point that
 * expands a `config.json` object into a ModuleTree plus its MoE facts.
 */
import { error, suggestion, type Diagnostic, type Result } from '../../diagnostics.js';
import type { ModuleTree } from '../module-tree.js';
import type { MoeFacts } from '../moe-facts.js';
import { ModelBuilder } from './blocks.js';
import { ConfigReader } from './config-reader.js';
import { deepseekV3 } from './deepseek-v3.js';
import type { ArchitectureDescriptor } from './descriptor.js';
import { glm4Moe } from './glm4-moe.js';
import { glm4MoeLite } from './glm4-moe-lite.js';
import { glmMoeDsa } from './glm-moe-dsa.js';
import { gptOss } from './gpt-oss.js';
import { granitemoe } from './granitemoe.js';
import { llama } from './llama.js';
import { llama4Text } from './llama4.js';
import { mistral } from './mistral.js';
import { mixtral } from './mixtral.js';
import { olmoe } from './olmoe.js';
import { phimoe } from './phimoe.js';
import { qwen2 } from './qwen2.js';
import { qwen2Moe } from './qwen2-moe.js';
import { qwen3 } from './qwen3.js';
import { qwen3Moe } from './qwen3-moe.js';
import { qwen3Next } from './qwen3-next.js';

/** Every descriptor, keyed by the `model_type` it expands. */
export const DESCRIPTORS: ReadonlyMap<string, ArchitectureDescriptor> = new Map(
  [llama, mistral, qwen2, qwen3, qwen2Moe, qwen3Moe, qwen3Next, mixtral, deepseekV3, glm4Moe, glm4MoeLite, glmMoeDsa, gptOss, llama4Text, olmoe, granitemoe, phimoe].map(
    (d) => [d.modelType, d] as const,
  ),
);

/** `model_type`s that transformers builds with another type's classes. */
export const MODEL_TYPE_ALIASES: Readonly<Record<string, string>> = {
  kimi_k2: 'deepseek_v3',
};

/** Every `model_type` quantc can expand, aliases and `llama4` included, sorted. */
export function supportedModelTypes(): string[] {
  return [...DESCRIPTORS.keys(), ...Object.keys(MODEL_TYPE_ALIASES), 'llama4'].sort();
}

/** A config expanded into the tree transformers builds. */
export interface Expansion {
  readonly tree: ModuleTree;
  readonly moe: MoeFacts;
  /** The descriptor's `model_type` (after aliases and `text_config`). */
  readonly modelType: string;
}

/**
 * Expands a `config.json` object. A multimodal `llama4` config expands its
 * `text_config` into `Llama4ForCausalLM` (what `AutoModelForCausalLM` builds
 * for the text model); `kimi_k2` expands as `deepseek_v3`.
 */
export function expandConfig(config: Readonly<Record<string, unknown>>, source = 'config.json'): Result<Expansion | undefined> {
  const declared = config['model_type'];
  if (typeof declared !== 'string' || declared === '') {
    return fail(
      error(
        'config-missing-model-type',
        `The config "${source}" has no "model_type", so quantc cannot tell which architecture to build; pass a module-tree JSON instead (see docs/models.md).`,
      ),
    );
  }
  let raw = config;
  let type = MODEL_TYPE_ALIASES[declared] ?? declared;
  if (declared === 'llama4') {
    const text = config['text_config'];
    raw = { ...(typeof text === 'object' && text !== null ? (text as Record<string, unknown>) : {}) };
    if (raw['dtype'] === undefined && raw['torch_dtype'] === undefined) raw = { ...raw, dtype: config['dtype'] ?? config['torch_dtype'] };
    type = 'llama4_text';
  }
  const descriptor = DESCRIPTORS.get(type);
  if (!descriptor) {
    return fail(
      error(
        'unknown-model-type',
        `quantc has no architecture descriptor for model_type "${declared}".${suggestion(declared, supportedModelTypes())} ` +
          'Dump the module tree with PyTorch (see docs/models.md) and pass that JSON file to --model instead.',
        undefined,
        [{ message: `Supported model types: ${supportedModelTypes().join(', ')}.` }],
      ),
    );
  }
  const cfg = new ConfigReader(raw, descriptor.defaults, declared, descriptor.aliases);
  const m = new ModelBuilder(cfg);
  descriptor.build(m);
  const via = type === declared ? declared : `${declared} as ${type}`;
  const tree = m.b.build(type, { kind: 'config', description: `${source} (${via})` });
  return { value: { tree, moe: { blocks: m.moe }, modelType: type }, diagnostics: cfg.diagnostics };
}

function fail(d: Diagnostic): Result<undefined> {
  return { value: undefined, diagnostics: [d] };
}
