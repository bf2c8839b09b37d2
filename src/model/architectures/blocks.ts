/**
 * Building blocks shared by the architecture descriptors: the causal-LM
 * skeleton, Linear, norms, activations, attention variants (grouped-query,
 * MLA), gated MLPs, fused experts and routers. Each adds modules in the
 * order transformers registers them in `__init__`, which is the order of
 * `named_modules()` and `named_parameters()`.
 */
import { TreeBuilder } from '../module-tree.js';
import type { ExpertLinearShape, ExpertsImplementation, MoeBlockFacts } from '../moe-facts.js';
import type { ConfigReader } from './config-reader.js';

/** transformers' `ACT2CLS`: `hidden_act` → activation module class. */
export const ACTIVATIONS: Readonly<Record<string, string>> = {
  gelu: 'GELUActivation',
  gelu_10: 'ClippedGELUActivation',
  gelu_fast: 'FastGELUActivation',
  gelu_new: 'NewGELUActivation',
  gelu_python: 'GELUActivation',
  gelu_pytorch_tanh: 'GELUTanh',
  gelu_python_tanh: 'GELUTanh',
  gelu_accurate: 'AccurateGELUActivation',
  hardswish: 'Hardswish',
  laplace: 'LaplaceActivation',
  leaky_relu: 'LeakyReLU',
  linear: 'LinearActivation',
  mish: 'MishActivation',
  quick_gelu: 'QuickGELUActivation',
  relu: 'ReLU',
  relu2: 'ReLUSquaredActivation',
  relu6: 'ReLU6',
  sigmoid: 'Sigmoid',
  silu: 'SiLUActivation',
  swish: 'SiLU',
  tanh: 'Tanh',
};

/** Options of a gated MLP (`gate_proj`, `up_proj`, `down_proj`, activation). */
export interface MlpOptions {
  readonly cls: string;
  readonly bias?: boolean;
  /** Attribute name of the activation module: `act_fn` (most) or `activation_fn` (Llama-4). */
  readonly actName?: string;
}

/** Options of a standard q/k/v/o attention. */
export interface AttentionOptions {
  readonly cls: string;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly qkvBias: boolean;
  readonly oBias: boolean;
  /** q_proj output multiplier (Qwen3-Next projects a gate with the query: 2). */
  readonly qMultiplier?: number;
  /**
   * RMSNorm over each head (`head`, Qwen3), or OLMoE's over whole projections
   * (`full`: q over `hidden_size`, k over `hidden_size / heads × kv_heads`,
   * regardless of `head_dim`); none when absent.
   */
  readonly qkNorm?: 'head' | 'full';
  /** Params held by the attention module itself, registered before its children (gpt-oss `sinks` comes after). */
  readonly ownParams?: readonly (readonly [string, readonly number[]])[];
}

/** Options of multi-head latent attention (DeepSeek-V3, GLM-4.7-Flash). */
export interface MlaOptions {
  readonly cls: string;
  readonly normCls: string;
  readonly heads: number;
  readonly qLoraRank: number | undefined;
  readonly kvLoraRank: number;
  readonly qkNopeHeadDim: number;
  readonly qkRopeHeadDim: number;
  readonly vHeadDim: number;
  readonly bias: boolean;
}

/** Options of a fused experts module. */
export interface ExpertsOptions {
  readonly cls: string;
  readonly numExperts: number;
  readonly intermediate: number;
  readonly layout: ExpertsImplementation;
  /** Whether the experts module holds an activation child (`act_fn`). */
  readonly act: boolean;
}

/** The module indices a descriptor hands to `moeBlock` to record an MoE block. */
export interface MoeBlockParts {
  readonly block: number;
  readonly experts: number;
  readonly router: number;
  readonly sharedExperts?: number;
  readonly sharedExpertGate?: number;
  readonly numExperts: number;
  readonly intermediate: number;
  readonly layout: ExpertsImplementation;
  readonly decorated?: boolean;
}

/** A block holding only a router and fused experts, router first (Mixtral, OLMoE, GraniteMoE, Phi-MoE, gpt-oss). */
export interface RoutedMoeOptions {
  /** Attribute of the decoder layer: `mlp` or `block_sparse_moe`. */
  readonly name: string;
  readonly blockCls: string;
  /** Attribute of the router: `gate` or `router`. */
  readonly routerName: string;
  readonly routerCls: string;
  readonly routerBias?: boolean;
  readonly routerLinear?: boolean;
  readonly experts: ExpertsOptions;
}

/** Class names of the causal-LM skeleton. */
export interface SkeletonClasses {
  readonly causalLm: string;
  readonly model: string;
  readonly pretrained: string;
  readonly layer: string;
  readonly norm: string;
  readonly rotary: string;
  /** The final norm is `nn.LayerNorm` (weight and bias) rather than an RMSNorm. */
  readonly layerNorm?: boolean;
}

/** Builds one model tree; descriptors call its helpers in registration order. */
export class ModelBuilder {
  readonly b = new TreeBuilder();
  readonly moe: MoeBlockFacts[] = [];
  readonly dtype: string;
  readonly hidden: number;
  /** Where {@link causalLm} puts the causal LM: the root, or a child module (a multimodal model's `language_model`). */
  causalLmAt: { readonly parent: number; readonly name: string } | null = null;
  /**
   * Where {@link causalLm} puts the base model instead, with `lm_head` under
   * `headParent` (transformers 5's Llava-style models: `model.language_model`
   * is the `…Model`, `lm_head` sits at the root).
   */
  baseModelAt: { readonly parent: number; readonly name: string; readonly headParent: number } | null = null;

  constructor(readonly cfg: ConfigReader) {
    this.dtype = cfg.dtype();
    this.hidden = cfg.int('hidden_size');
  }

  /** Adds a module with its params (`[name, shape]`), returning its index. */
  module(parent: number, name: string, cls: string, params: readonly (readonly [string, readonly number[]])[] = []): number {
    const i = this.b.child(parent, name, cls);
    for (const [p, shape] of params) this.b.param(i, p, shape, this.dtype);
    return i;
  }

  /** `nn.Linear(inp, out, bias)` or a subclass of it. */
  linear(parent: number, name: string, out: number, inp: number, bias = false, cls = 'Linear'): number {
    return this.module(parent, name, cls, bias ? [['weight', [out, inp]], ['bias', [out]]] : [['weight', [out, inp]]]);
  }

  /** A norm holding one `weight` of `[dim]` (RMSNorm and friends). */
  norm(parent: number, name: string, cls: string, dim: number): number {
    return this.module(parent, name, cls, [['weight', [dim]]]);
  }

  /** `nn.LayerNorm(dim)` with weight and bias. */
  layerNorm(parent: number, name: string, dim: number): number {
    return this.module(parent, name, 'LayerNorm', [['weight', [dim]], ['bias', [dim]]]);
  }

  /** The activation module for `hidden_act`. */
  act(parent: number, name = 'act_fn'): number {
    const act = this.cfg.str('hidden_act', 'silu');
    return this.module(parent, name, ACTIVATIONS[act] ?? 'SiLUActivation');
  }

  /** A gated MLP: gate_proj, up_proj, down_proj, activation. */
  mlp(parent: number, name: string, intermediate: number, o: MlpOptions): number {
    const m = this.module(parent, name, o.cls);
    const bias = o.bias ?? false;
    this.linear(m, 'gate_proj', intermediate, this.hidden, bias);
    this.linear(m, 'up_proj', intermediate, this.hidden, bias);
    this.linear(m, 'down_proj', this.hidden, intermediate, bias);
    this.act(m, o.actName);
    return m;
  }

  /** q/k/v/o attention, optionally with q/k norms. */
  attention(parent: number, name: string, o: AttentionOptions, normCls: string): number {
    const a = this.module(parent, name, o.cls, o.ownParams ?? []);
    const h = this.hidden;
    this.linear(a, 'q_proj', o.heads * o.headDim * (o.qMultiplier ?? 1), h, o.qkvBias);
    this.linear(a, 'k_proj', o.kvHeads * o.headDim, h, o.qkvBias);
    this.linear(a, 'v_proj', o.kvHeads * o.headDim, h, o.qkvBias);
    this.linear(a, 'o_proj', h, o.heads * o.headDim, o.oBias);
    if (o.qkNorm === 'head') {
      this.norm(a, 'q_norm', normCls, o.headDim);
      this.norm(a, 'k_norm', normCls, o.headDim);
    } else if (o.qkNorm === 'full') {
      this.norm(a, 'q_norm', normCls, h);
      this.norm(a, 'k_norm', normCls, Math.floor(h / o.heads) * o.kvHeads);
    }
    return a;
  }

  /** Multi-head latent attention: low-rank q (or plain q_proj) and compressed kv. */
  mla(parent: number, name: string, o: MlaOptions): number {
    const a = this.module(parent, name, o.cls);
    const h = this.hidden;
    const qkHead = o.qkNopeHeadDim + o.qkRopeHeadDim;
    if (o.qLoraRank === undefined) {
      this.linear(a, 'q_proj', o.heads * qkHead, h);
    } else {
      this.linear(a, 'q_a_proj', o.qLoraRank, h, o.bias);
      this.norm(a, 'q_a_layernorm', o.normCls, o.qLoraRank);
      this.linear(a, 'q_b_proj', o.heads * qkHead, o.qLoraRank);
    }
    this.linear(a, 'kv_a_proj_with_mqa', o.kvLoraRank + o.qkRopeHeadDim, h, o.bias);
    this.norm(a, 'kv_a_layernorm', o.normCls, o.kvLoraRank);
    this.linear(a, 'kv_b_proj', o.heads * (o.qkNopeHeadDim + o.vHeadDim), o.kvLoraRank);
    this.linear(a, 'o_proj', h, o.heads * o.vHeadDim, o.bias);
    return a;
  }

  /** A fused experts module: 3-D `gate_up_proj`/`down_proj` (+ biases) in the declared layout. */
  experts(parent: number, name: string, o: ExpertsOptions): number {
    const { numExperts: e, intermediate: i, layout } = o;
    const h = this.hidden;
    const up = layout.hasGate ? 2 * i : i;
    const upName = layout.hasGate ? 'gate_up_proj' : 'up_proj';
    const params: [string, number[]][] = [];
    params.push([upName, layout.isTransposed ? [e, h, up] : [e, up, h]]);
    if (layout.hasBias) params.push([`${upName}_bias`, [e, up]]);
    params.push(['down_proj', layout.isTransposed ? [e, i, h] : [e, h, i]]);
    if (layout.hasBias) params.push(['down_proj_bias', [e, h]]);
    const x = this.module(parent, name, o.cls, params);
    if (o.act) this.act(x);
    return x;
  }

  /** A router holding `weight [E, H]` (and `bias [E]`); `linear` routers subclass `nn.Linear`. */
  router(parent: number, name: string, cls: string, numExperts: number, opts: { bias?: boolean; linear?: boolean } = {}): number {
    if (opts.linear) this.b.defineClass(cls, ['Linear', 'Module']);
    const params: [string, number[]][] = [['weight', [numExperts, this.hidden]]];
    if (opts.bias) params.push(['bias', [numExperts]]);
    return this.module(parent, name, cls, params);
  }

  /** Adds a router-plus-experts block and records it. */
  routedMoe(parent: number, o: RoutedMoeOptions): number {
    const block = this.module(parent, o.name, o.blockCls);
    const e = o.experts.numExperts;
    const router = this.router(block, o.routerName, o.routerCls, e, { bias: o.routerBias ?? false, linear: o.routerLinear ?? false });
    const experts = this.experts(block, 'experts', o.experts);
    this.moeBlock({ block, experts, router, numExperts: e, intermediate: o.experts.intermediate, layout: o.experts.layout });
    return block;
  }

  /** Records an MoE block for the planner. */
  moeBlock(p: MoeBlockParts): void {
    const { intermediate: i, layout } = p;
    const h = this.hidden;
    // llm-compressor's ExpertMLPWithGate registers up_proj before gate_proj.
    const linears: ExpertLinearShape[] = [{ name: 'up_proj', shape: [i, h], bias: layout.hasBias }];
    if (layout.hasGate) linears.push({ name: 'gate_proj', shape: [i, h], bias: layout.hasBias });
    linears.push({ name: 'down_proj', shape: [h, i], bias: layout.hasBias });
    this.moe.push({
      block: p.block,
      experts: p.experts,
      router: p.router,
      sharedExperts: p.sharedExperts ?? -1,
      sharedExpertGate: p.sharedExpertGate ?? -1,
      numExperts: p.numExperts,
      topK: this.cfg.optInt('num_experts_per_tok') ?? this.cfg.optInt('experts_per_token'),
      hiddenSize: h,
      intermediateSize: i,
      layout,
      decorated: p.decorated ?? true,
      expertLinears: linears,
      dtype: this.dtype,
    });
  }

  /**
   * The causal-LM skeleton every supported model shares:
   * `ForCausalLM → model → embed_tokens, layers[i], norm, rotary_emb; lm_head`.
   * `layer` fills decoder layer `i` (its module index is given).
   */
  causalLm(c: SkeletonClasses, layer: (index: number, module: number) => void): void {
    const b = this.b;
    if (!this.baseModelAt) b.defineClass(c.causalLm, [c.pretrained, 'PreTrainedModel', 'Module']);
    b.defineClass(c.model, [c.pretrained, 'PreTrainedModel', 'Module']);
    b.defineClass(c.layer, ['GradientCheckpointingLayer', 'Module']);
    const vocab = this.cfg.int('vocab_size');
    const layers = this.cfg.int('num_hidden_layers');
    const base = this.baseModelAt;
    const root = base ? base.headParent : this.causalLmAt ? this.module(this.causalLmAt.parent, this.causalLmAt.name, c.causalLm) : b.add('', c.causalLm, -1);
    const model = base ? this.module(base.parent, base.name, c.model) : this.module(root, 'model', c.model);
    this.module(model, 'embed_tokens', 'Embedding', [['weight', [vocab, this.hidden]]]);
    const list = this.module(model, 'layers', 'ModuleList');
    for (let i = 0; i < layers; i++) layer(i, this.module(list, String(i), c.layer));
    if (c.layerNorm) this.layerNorm(model, 'norm', this.hidden);
    else this.norm(model, 'norm', c.norm, this.hidden);
    this.module(model, 'rotary_emb', c.rotary);
    const tied = this.cfg.bool('tie_word_embeddings', false);
    const lmBias = this.cfg.bool('lm_head_bias', false);
    // A tied lm_head shares the embedding's Parameter, which
    // named_parameters() reports only once (under embed_tokens).
    const lmParams: [string, number[]][] = tied ? [] : [['weight', [vocab, this.hidden]]];
    if (lmBias) lmParams.push(['bias', [vocab]]);
    this.module(root, 'lm_head', 'Linear', lmParams);
  }
}

/** The standard class names `<P>ForCausalLM`, `<P>Model`, … for prefix `P`. */
export function skeletonClasses(prefix: string): SkeletonClasses {
  return {
    causalLm: `${prefix}ForCausalLM`,
    model: `${prefix}Model`,
    pretrained: `${prefix}PreTrainedModel`,
    layer: `${prefix}DecoderLayer`,
    norm: `${prefix}RMSNorm`,
    rotary: `${prefix}RotaryEmbedding`,
  };
}

/**
 * The usual attention of a decoder layer: `num_attention_heads` query heads,
 * grouped KV heads and the config's head size, with or without biases.
 */
export function gqaAttention(cfg: ConfigReader, cls: string, qkvBias: boolean, oBias = qkvBias): AttentionOptions {
  return { cls, heads: cfg.int('num_attention_heads'), kvHeads: kvHeads(cfg), headDim: headDim(cfg), qkvBias, oBias };
}

/** `head_dim` as most attention classes read it: the config's, else hidden / heads. */
export function headDim(cfg: ConfigReader): number {
  return cfg.optInt('head_dim') ?? Math.floor(cfg.int('hidden_size') / Math.max(1, cfg.int('num_attention_heads')));
}

/** `num_key_value_heads`, defaulting to `num_attention_heads`. */
export function kvHeads(cfg: ConfigReader): number {
  return cfg.optInt('num_key_value_heads') ?? cfg.int('num_attention_heads');
}
