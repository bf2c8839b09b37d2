/**
 * `llama4_text` → `Llama4ForCausalLM` (and the `text_config` of a
 * multimodal `llama4` config): MoE on `moe_layers` (default every
 * `interleave_moe_layer_step`-th layer), a router that subclasses
 * `nn.Linear`, one shared expert, and experts stored transposed
 * (`gate_up_proj [E, H, 2I]`, `down_proj [E, I, H]`) in a class without
 * `@use_experts_implementation`.
 */
import type { ExpertsImplementation } from '../moe-facts.js';
import { headDim, kvHeads, type ModelBuilder } from './blocks.js';
import { ConfigReader } from './config-reader.js';
import type { ArchitectureDescriptor } from './descriptor.js';

const LLAMA4_LAYOUT: ExpertsImplementation = { isConcatenated: true, isTransposed: true, hasBias: false, hasGate: true };

/** Llama 4 Scout / Maverick (text model). */
export const llama4Text: ArchitectureDescriptor = {
  modelType: 'llama4_text',
  causalLm: 'Llama4ForCausalLM',
  defaults: {
    vocab_size: 202048, hidden_size: 5120, intermediate_size: 8192, intermediate_size_mlp: 16384,
    num_hidden_layers: 48, num_attention_heads: 40, num_key_value_heads: 8, head_dim: 128, hidden_act: 'silu',
    tie_word_embeddings: false, attention_bias: false, use_qk_norm: true, num_local_experts: 16,
    num_experts_per_tok: 1, interleave_moe_layer_step: 1, no_rope_layer_interval: 4,
  },
  build(m) {
    const cfg = m.cfg;
    const n = cfg.int('num_hidden_layers');
    const step = Math.max(1, cfg.optInt('interleave_moe_layer_step') ?? 1);
    const moeLayers = new Set(cfg.intList('moe_layers') ?? Array.from({ length: n }, (_, i) => i).filter((i) => i >= step - 1 && (i - (step - 1)) % step === 0));
    const interval = cfg.optInt('no_rope_layer_interval') ?? 4;
    const given = cfg.intList('no_rope_layers');
    const useRope = given && given.length > 0 ? given : Array.from({ length: n }, (_, i) => ((i + 1) % interval !== 0 ? 1 : 0));
    const qkNorm = cfg.bool('use_qk_norm', true);
    const bias = cfg.bool('attention_bias', false);
    const attention = {
      cls: 'Llama4TextAttention',
      heads: cfg.int('num_attention_heads'),
      kvHeads: kvHeads(cfg),
      headDim: headDim(cfg),
      qkvBias: bias,
      oBias: bias,
    };
    const e = cfg.int('num_local_experts');
    const inter = cfg.int('intermediate_size');
    const mlpOpts = { cls: 'Llama4TextMLP', actName: 'activation_fn' };
    const c = {
      causalLm: 'Llama4ForCausalLM',
      model: 'Llama4TextModel',
      pretrained: 'Llama4PreTrainedModel',
      layer: 'Llama4TextDecoderLayer',
      norm: 'Llama4TextRMSNorm',
      rotary: 'Llama4TextRotaryEmbedding',
    };
    m.causalLm(c, (i, layer) => {
      const attn = m.attention(layer, 'self_attn', attention, c.norm);
      if (qkNorm && useRope[i]) m.module(attn, 'qk_norm', 'Llama4TextL2Norm');
      if (moeLayers.has(i)) {
        const block = m.module(layer, 'feed_forward', 'Llama4TextMoe');
        const experts = m.experts(block, 'experts', { cls: 'Llama4TextExperts', numExperts: e, intermediate: inter, layout: LLAMA4_LAYOUT, act: true });
        const router = m.router(block, 'router', 'Llama4Router', e, { linear: true });
        const shared = m.mlp(block, 'shared_expert', inter, mlpOpts);
        m.moeBlock({ block, experts, router, sharedExperts: shared, numExperts: e, intermediate: inter, layout: LLAMA4_LAYOUT, decorated: false });
      } else {
        m.mlp(layer, 'feed_forward', cfg.int('intermediate_size_mlp'), mlpOpts);
      }
      m.norm(layer, 'input_layernorm', c.norm, m.hidden);
      m.norm(layer, 'post_attention_layernorm', c.norm, m.hidden);
    });
  },
};

/** `Llama4VisionConfig` defaults. */
const VISION_DEFAULTS: Readonly<Record<string, unknown>> = {
  hidden_size: 768, num_hidden_layers: 34, num_attention_heads: 16, num_channels: 3, intermediate_size: 5632,
  vision_output_dim: 7680, image_size: 448, patch_size: 14, projector_input_dim: 4096, projector_output_dim: 4096,
};

/**
 * The parts of `Llama4ForConditionalGeneration` around its language model,
 * in module order under `root`: `vision_model` (unfold-convolution patch
 * embedding, class and positional embeddings, pre/post LayerNorms, the
 * encoder layers, the pixel-shuffle adapter MLP) and `multi_modal_projector`.
 */
export function llama4VisionTower(m: ModelBuilder, root: number, vision: ConfigReader, textHidden: number): void {
  const b = m.b;
  b.defineClass('Llama4VisionModel', ['Llama4PreTrainedModel', 'PreTrainedModel', 'Module']);
  b.defineClass('Llama4VisionEncoderLayer', ['GradientCheckpointingLayer', 'Module']);
  const h = vision.int('hidden_size');
  const inter = vision.int('intermediate_size');
  const patch = vision.int('patch_size');
  const patches = Math.floor(vision.int('image_size') / patch) ** 2 + 1;
  const linear = (parent: number, name: string, out: number, inp: number, bias: boolean): number =>
    m.module(parent, name, 'Linear', bias ? [['weight', [out, inp]], ['bias', [out]]] : [['weight', [out, inp]]]);
  const vm = m.module(root, 'vision_model', 'Llama4VisionModel', [['class_embedding', [h]], ['positional_embedding_vlm', [patches, h]]]);
  const embed = m.module(vm, 'patch_embedding', 'Llama4UnfoldConvolution');
  m.module(embed, 'unfold', 'Unfold');
  linear(embed, 'linear', h, vision.int('num_channels') * patch * patch, false);
  m.module(vm, 'rotary_embedding', 'Llama4VisionRotaryEmbedding');
  m.layerNorm(vm, 'layernorm_pre', h);
  m.layerNorm(vm, 'layernorm_post', h);
  const layers = m.module(m.module(vm, 'model', 'Llama4VisionEncoder'), 'layers', 'ModuleList');
  for (let i = 0; i < vision.int('num_hidden_layers'); i++) {
    const layer = m.module(layers, String(i), 'Llama4VisionEncoderLayer');
    const attn = m.module(layer, 'self_attn', 'Llama4VisionAttention');
    for (const p of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) linear(attn, p, h, h, true);
    const mlp = m.module(layer, 'mlp', 'Llama4VisionMLP');
    m.module(mlp, 'activation_fn', 'GELU');
    linear(mlp, 'fc1', inter, h, true);
    linear(mlp, 'fc2', h, inter, true);
    m.layerNorm(layer, 'input_layernorm', h);
    m.layerNorm(layer, 'post_attention_layernorm', h);
  }
  const adapter = m.module(m.module(vm, 'vision_adapter', 'Llama4VisionPixelShuffleMLP'), 'mlp', 'Llama4VisionMLP2');
  const projOut = vision.int('projector_output_dim');
  linear(adapter, 'fc1', vision.int('projector_input_dim'), inter, false);
  linear(adapter, 'fc2', projOut, projOut, false);
  m.module(adapter, 'activation_fn', 'GELU');
  linear(m.module(root, 'multi_modal_projector', 'Llama4MultiModalProjector'), 'linear_1', textHidden, vision.int('vision_output_dim'), false);
}

/** Reads a multimodal `llama4` config's `vision_config`. */
export function visionConfigReader(config: Readonly<Record<string, unknown>>): ConfigReader {
  const v = config['vision_config'];
  return new ConfigReader(typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {}, VISION_DEFAULTS, 'llama4_vision_model');
}
