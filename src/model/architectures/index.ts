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
import { llama4Text, llama4VisionTower, visionConfigReader } from './llama4.js';
import { mistral } from './mistral.js';
import { mixtral } from './mixtral.js';
import { olmoe } from './olmoe.js';
import { phimoe } from './phimoe.js';
import { qwen2 } from './qwen2.js';
import { qwen2Moe } from './qwen2-moe.js';
import { qwen3 } from './qwen3.js';
import { qwen3Moe } from './qwen3-moe.js';
import { qwen3Next } from './qwen3-next.js';
import { VISION_LANGUAGE, visionLanguageText, visionLanguageVision, type VisionLanguageModel } from './vision-language.js';

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
  return [...DESCRIPTORS.keys(), ...Object.keys(MODEL_TYPE_ALIASES), 'llama4', ...VISION_LANGUAGE.keys()].sort();
}

/** A config expanded into the tree transformers builds. */
export interface Expansion {
  readonly tree: ModuleTree;
  readonly moe: MoeFacts;
  /** The descriptor's `model_type` (after aliases and `text_config`). */
  readonly modelType: string;
}

/**
 * Expands a `config.json` object. A `llama4` config whose `architectures`
 * name `Llama4ForConditionalGeneration` (as published checkpoints do)
 * expands into that class's tree: vision tower, projector, and the
 * `text_config` causal LM under `language_model`; otherwise its
 * `text_config` alone, as `Llama4ForCausalLM` (what `AutoModelForCausalLM`
 * builds). `llava` and `mistral3` expand into their
 * `…ForConditionalGeneration` tree (transformers 5's layout: `model.vision_tower`,
 * `model.multi_modal_projector`, `model.language_model` = the `text_config`
 * model's `…Model`, `lm_head` at the root); `internvl` likewise; `qwen2_5_vl`,
 * `qwen2_vl`, `qwen3_vl` and `qwen3_vl_moe` with `model.visual` and their own
 * text model;
 * `idefics3` with `model.vision_model`, `model.connector` and
 * `model.text_model`. `kimi_k2` expands as `deepseek_v3`.
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
  const multimodal = declared === 'llama4' && isConditionalGeneration(config);
  if (declared === 'llama4') {
    const text = config['text_config'];
    raw = { ...(typeof text === 'object' && text !== null ? (text as Record<string, unknown>) : {}) };
    if (raw['dtype'] === undefined && raw['torch_dtype'] === undefined) raw = { ...raw, dtype: config['dtype'] ?? config['torch_dtype'] };
    type = 'llama4_text';
  }
  const vlm = VISION_LANGUAGE.get(declared);
  if (vlm) {
    raw = visionLanguageText(vlm, config);
    type = MODEL_TYPE_ALIASES[raw['model_type'] as string] ?? (raw['model_type'] as string);
  }
  const descriptor = vlm?.textModel ?? DESCRIPTORS.get(type);
  if (vlm && !descriptor) {
    return fail(
      error(
        'unknown-model-type',
        `quantc has no architecture descriptor for the text model of this ${vlm.cls} (text_config model_type "${type}"). ` +
          'Dump the module tree with PyTorch (see docs/models.md) and pass that JSON file to --model instead.',
        undefined,
        [{ message: `Supported model types: ${supportedModelTypes().join(', ')}.` }],
      ),
    );
  }
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
  const vision = multimodal ? visionConfigReader(config) : undefined;
  if (vision) {
    // Llama4ForConditionalGeneration: vision tower and projector, then the causal LM as `language_model`.
    m.b.defineClass('Llama4ForConditionalGeneration', ['Llama4PreTrainedModel', 'PreTrainedModel', 'Module']);
    const root = m.b.add('', 'Llama4ForConditionalGeneration', -1);
    llama4VisionTower(m, root, vision, cfg.int('hidden_size'));
    m.causalLmAt = { parent: root, name: 'language_model' };
  }
  const vlmDiagnostics = vlm ? visionLanguageParts(m, vlm, config) : [];
  if (vlmDiagnostics === undefined) return fail(unknownTower(vlm!, config));
  descriptor.build(m);
  const diagnostics = [...cfg.diagnostics, ...(vision?.diagnostics ?? []), ...vlmDiagnostics];
  const via = multimodal ? `${declared} as Llama4ForConditionalGeneration` : vlm ? `${declared} as ${vlm.cls}, text model ${type}` : type === declared ? declared : `${declared} as ${type}`;
  const tree = m.b.build(multimodal || vlm ? declared : type, { kind: 'config', description: `${source} (${via})` });
  return { value: { tree, moe: { blocks: m.moe }, modelType: type }, diagnostics };
}

/** Whether a config names a `…ForConditionalGeneration` class (a vision-language model as transformers builds it). */
export function isConditionalGeneration(config: Readonly<Record<string, unknown>>): boolean {
  const archs = config['architectures'];
  return Array.isArray(archs) && archs.some((a) => typeof a === 'string' && a.endsWith('ForConditionalGeneration'));
}

/**
 * The Llava-layout root, `model` with its vision tower and projector, and
 * where the text model goes; the readers' diagnostics, or undefined when the
 * vision tower is of a type quantc does not build.
 */
function visionLanguageParts(m: ModelBuilder, v: VisionLanguageModel, config: Readonly<Record<string, unknown>>): Diagnostic[] | undefined {
  const vision = visionLanguageVision(v, config).reader;
  if (!vision) return undefined;
  const top = new ConfigReader(config, { multimodal_projector_bias: v.projectorBias, spatial_merge_size: 2, projector_hidden_act: 'gelu', scale_factor: 2 }, v.modelType);
  m.b.defineClass(v.cls, [v.pretrained, 'PreTrainedModel', 'Module']);
  m.b.defineClass(v.model, [v.pretrained, 'PreTrainedModel', 'Module']);
  const root = m.b.add('', v.cls, -1);
  const model = m.module(root, 'model', v.model);
  v.parts(m, model, vision, top, m.hidden);
  m.baseModelAt = { parent: model, name: v.textName ?? 'language_model', headParent: root };
  return [...vision.diagnostics, ...top.diagnostics];
}

function unknownTower(v: VisionLanguageModel, config: Readonly<Record<string, unknown>>): Diagnostic {
  const type = visionLanguageVision(v, config).type;
  return error(
    'unknown-model-type',
    `quantc builds ${v.cls} with its usual vision tower only, not a "${type}" vision_config. Dump the module tree with PyTorch (see docs/models.md) and pass that JSON file to --model instead.`,
  );
}

function fail(d: Diagnostic): Result<undefined> {
  return { value: undefined, diagnostics: [d] };
}
