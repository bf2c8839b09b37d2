/**
 * `glm_moe_dsa` → `GlmMoeDsaForCausalLM`: MLA attention plus a DeepSeek
 * sparse-attention indexer on `full` layers of `indexer_types` (layers
 * marked `shared` reuse an earlier layer's top-k and hold no indexer), and
 * `mlp_layer_types` defaulting to `first_k_dense_replace` dense layers.
 */
import { skeletonClasses } from './blocks.js';
import { deepseekMlp, mlaOptions, mlpLayerTypes } from './deepseek-moe.js';
import type { ArchitectureDescriptor } from './descriptor.js';

/** GLM-5. */
export const glmMoeDsa: ArchitectureDescriptor = {
  modelType: 'glm_moe_dsa',
  causalLm: 'GlmMoeDsaForCausalLM',
  defaults: {
    vocab_size: 154880, hidden_size: 6144, intermediate_size: 12288, num_hidden_layers: 78,
    num_attention_heads: 64, hidden_act: 'silu', tie_word_embeddings: false, attention_bias: false,
    moe_intermediate_size: 2048, n_routed_experts: 256, n_shared_experts: 1, num_experts_per_tok: 8,
    first_k_dense_replace: 3, q_lora_rank: 2048, kv_lora_rank: 512, qk_nope_head_dim: 192, qk_rope_head_dim: 64,
    v_head_dim: 256, index_n_heads: 32, index_head_dim: 128, index_topk_freq: 1, index_skip_topk_offset: 2,
  },
  aliases: { n_routed_experts: 'num_local_experts', num_local_experts: 'n_routed_experts' },
  build(m) {
    const cfg = m.cfg;
    const c = skeletonClasses('GlmMoeDsa');
    const mla = mlaOptions(m, 'GlmMoeDsa');
    const n = cfg.int('num_hidden_layers');
    const types = mlpLayerTypes(m, Math.min(cfg.int('first_k_dense_replace'), n));
    const indexers = indexerTypes(m, n);
    const indexHeads = cfg.int('index_n_heads');
    const indexDim = cfg.int('index_head_dim');
    const qRank = mla.qLoraRank ?? m.hidden;
    m.causalLm(c, (i, layer) => {
      const attn = m.mla(layer, 'self_attn', mla);
      if (indexers[i] !== 'shared') {
        const ix = m.module(attn, 'indexer', 'GlmMoeDsaIndexer');
        m.linear(ix, 'wq_b', indexHeads * indexDim, qRank);
        m.linear(ix, 'wk', indexDim, m.hidden);
        m.layerNorm(ix, 'k_norm', indexDim);
        m.linear(ix, 'weights_proj', indexHeads, m.hidden);
      }
      deepseekMlp(m, layer, 'GlmMoeDsa', types[i] === 'sparse');
      m.norm(layer, 'input_layernorm', c.norm, m.hidden);
      m.norm(layer, 'post_attention_layernorm', c.norm, m.hidden);
    });
  },
};

/** `indexer_types`, else `index_topk_pattern` (`F`/`S`), else the freq/offset schedule of the config class. */
function indexerTypes(m: Parameters<ArchitectureDescriptor['build']>[0], n: number): string[] {
  const explicit = m.cfg.strList('indexer_types');
  if (explicit) return explicit;
  const pattern = m.cfg.get('index_topk_pattern');
  if (typeof pattern === 'string') return [...pattern].map((ch) => (ch === 'S' ? 'shared' : 'full'));
  if (Array.isArray(pattern)) return pattern.map(String);
  const freq = Math.max(m.cfg.optInt('index_topk_freq') ?? 1, 1);
  const offset = m.cfg.optInt('index_skip_topk_offset') ?? 2;
  return Array.from({ length: n }, (_, i) => (Math.max(i - offset + 1, 0) % freq === 0 ? 'full' : 'shared'));
}
