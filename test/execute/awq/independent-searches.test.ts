import { describe, expect, test } from 'vitest';
import { independentSearches } from '../../../src/execute/awq/awq-modifier.js';

const L = 'model.layers.0';
const qkv = { smooth: `${L}.input_layernorm`, balance: [`${L}.self_attn.q_proj`, `${L}.self_attn.k_proj`, `${L}.self_attn.v_proj`], parent: `${L}.self_attn` };
const vo = { smooth: `${L}.self_attn.v_proj`, balance: [`${L}.self_attn.o_proj`], parent: `${L}.self_attn.o_proj` };
const gateUp = { smooth: `${L}.post_attention_layernorm`, balance: [`${L}.mlp.gate_proj`, `${L}.mlp.up_proj`], parent: `${L}.mlp` };
const upDown = { smooth: `${L}.mlp.up_proj`, balance: [`${L}.mlp.down_proj`], parent: `${L}.mlp.down_proj` };

describe('AWQ searches of one layer in one run', () => {
  test("llama's mappings search on weights no earlier one smooths", () => {
    expect(independentSearches([qkv, vo, gateUp, upDown])).toBe(true);
    expect(independentSearches([qkv, gateUp, upDown])).toBe(true);
  });

  test('a mapping whose balance layer an earlier one smoothed, or whose parent reads one, must wait for its folding', () => {
    // o_proj balanced first, then read by the attention parent of the q/k/v search.
    expect(independentSearches([vo, qkv])).toBe(false);
    // down_proj balanced first, then read by the MLP parent.
    expect(independentSearches([upDown, gateUp])).toBe(false);
    // up_proj's rows divided first, then balanced.
    expect(independentSearches([upDown, { ...gateUp, balance: [`${L}.mlp.up_proj`], parent: `${L}.mlp.up_proj` }])).toBe(false);
  });

  test('parents the joint run does not rebuild keep one search at a time', () => {
    expect(independentSearches([qkv, { smooth: `${L}.post_attention_layernorm`, balance: [`${L}.mlp.experts.0.gate_proj`], parent: `${L}.mlp`, parentClass: 'Qwen3MoeSparseMoeBlock' }])).toBe(false);
  });
});
