"""PyTorch baseline for test/bench/calibrate.ts: random bf16 llama checkpoints,
and transformers eager forward passes over the same token batches quantc
calibrates on.

    python test/bench/torch_forward.py make DIR --size tiny|1b [--arch llama|olmoe|granitemoe|phimoe|gpt_oss|llama4_text|qwen3_next|glm_moe_dsa|qwen3_moe|qwen3_moe_a3b]
        writes config.json + model.safetensors of a random llama (bf16), or of an
        MoE architecture with the same attention and 8 experts of width 256 (top 2;
        qwen3_moe: 64 experts, top 8; qwen3_moe_a3b: Qwen3-30B-A3B's 128 experts of width 768, 4 layers)
    python test/bench/torch_forward.py run DIR TOKENS.json --device cpu|cuda --dtype float32|bfloat16 [--routed] [--observers]
        runs the decoder (model.model: embeddings and layers, no lm_head, as
        quantc's calibration does) on every batch of TOKENS.json ([[B][T]]
        batches) and prints one JSON line: {"seconds", "tokens", "tokens_per_s"}

`--observers` adds what llm-compressor's calibration of a static-activation
recipe does on top of the forward pass: an input observer on every Linear of
the decoder layers, called from a forward pre-hook as its
`calibrate_input_hook` is, reducing the flattened input `(B·T, 1, C)` with
`torch.amin`/`torch.amax` over dims (0, −1) and keeping the running min and max
(`static_minmax`). Each Linear observes its own input, so q/k/v (and gate/up)
reduce the same tensor once each, as llm-compressor's hooks do; with fused
experts, every expert's gate, up and down inputs are observed the same way.

Fused experts (3-D gate_up_proj/down_proj, the transformers 5 layout) run
as llm-compressor calibrates them by default: every expert on every token,
gate and up as separate products (its `LinearExperts2D` with the
calibrate-all-experts flag), only the routed rows weighted into the output.
That is the work quantc's calibration does; `--routed` runs transformers'
own forward instead (each expert on its routed tokens).

The first batch is run once before the timed pass (kernel selection, allocator
warm-up); the timed pass covers every batch, with a device synchronisation at
the end. Loading the model (`from_pretrained` onto the device, after the
device's context is made) and that first pass are timed apart
(`load_seconds`, `first_pass_seconds`), for the end-to-end comparison.
"""

import argparse
import inspect
import json
import os
import time

import torch

SIZES = {
    # a few million parameters: shapes small enough for CI-class CPUs
    "tiny": dict(hidden_size=256, intermediate_size=704, num_hidden_layers=4, num_attention_heads=8,
                 num_key_value_heads=4, vocab_size=8192),
    # TinyLlama-1.1B's shape: 22 layers of hidden 2048, 32 query / 4 KV heads, MLP 5632
    "1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
               num_key_value_heads=4, vocab_size=32000),
}
# MoE architectures on the tiny/1b attention shapes: the MLP becomes 8 routed experts (2 per token;
# Llama 4 routes to 1 next to its shared expert). A function of the size where head widths matter.
ARCHS = {
    "llama": lambda s: {},
    "olmoe": lambda s: dict(num_experts=8, num_experts_per_tok=2, intermediate_size=256),
    "granitemoe": lambda s: dict(num_local_experts=8, num_experts_per_tok=2, intermediate_size=256, embedding_multiplier=12.0,
                                 residual_multiplier=0.22, attention_multiplier=0.0625, logits_scaling=6.0),
    "phimoe": lambda s: dict(num_local_experts=8, num_experts_per_tok=2, intermediate_size=256),
    # sliding and full attention alternating, sinks, biased router and experts (eager attention only)
    "gpt_oss": lambda s: dict(num_local_experts=8, num_experts_per_tok=2, intermediate_size=256,
                              head_dim=s["hidden_size"] // s["num_attention_heads"], sliding_window=128),
    # dense MLP and MoE layers interleaved, NoPE every 4th layer, chunked attention, QK norm
    "llama4_text": lambda s: dict(num_local_experts=8, num_experts_per_tok=1, intermediate_size=256,
                                  intermediate_size_mlp=s["intermediate_size"], interleave_moe_layer_step=2,
                                  head_dim=s["hidden_size"] // s["num_attention_heads"], attention_chunk_size=256),
    # gated DeltaNet layers with a full-attention layer every 4th, shared expert with its gate
    "qwen3_next": lambda s: dict(num_experts=8, num_experts_per_tok=2, moe_intermediate_size=256, shared_expert_intermediate_size=256,
                                 head_dim=s["hidden_size"] // s["num_attention_heads"], linear_num_key_heads=s["num_key_value_heads"],
                                 linear_num_value_heads=s["num_attention_heads"], linear_key_head_dim=64, linear_value_head_dim=64),
    # MLA with the DSA indexer keeping 256 keys per query, one dense layer first, a shared expert
    "glm_moe_dsa": lambda s: dict(num_key_value_heads=s["num_attention_heads"], n_routed_experts=8, num_experts_per_tok=2, moe_intermediate_size=256, n_shared_experts=1,
                                  first_k_dense_replace=1, n_group=1, topk_group=1, kv_lora_rank=128, q_lora_rank=256,
                                  qk_rope_head_dim=32, qk_nope_head_dim=64, v_head_dim=64, index_topk=256, index_n_heads=16,
                                  index_head_dim=64),
    # Qwen3-30B-A3B's routing (64 of its 128 experts kept): 64 experts of width 256, top 8, QK norm
    "qwen3_moe": lambda s: dict(num_experts=64, num_experts_per_tok=8, moe_intermediate_size=256, norm_topk_prob=True,
                                head_dim=s["hidden_size"] // s["num_attention_heads"], decoder_sparse_step=1, mlp_only_layers=[]),
    # Qwen3-30B-A3B's MoE blocks (128 experts of width 768, top 8, 2048 wide) on 4 layers: 1.2 GB of bf16 experts a layer
    "qwen3_moe_a3b": lambda s: dict(num_experts=128, num_experts_per_tok=8, moe_intermediate_size=768, norm_topk_prob=True,
                                    head_dim=s["hidden_size"] // s["num_attention_heads"], decoder_sparse_step=1, mlp_only_layers=[],
                                    num_hidden_layers=min(4, s["num_hidden_layers"])),
}


EAGER_ONLY = {"gpt_oss", "glm_moe_dsa"}
# Bench architectures that are another shape of a transformers model_type.
MODEL_TYPES = {"qwen3_moe_a3b": "qwen3_moe"}


def make(args):
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(MODEL_TYPES.get(args.arch, args.arch), **{**SIZES[args.size], **ARCHS[args.arch](SIZES[args.size])}, max_position_embeddings=4096, rms_norm_eps=1e-5,
                               rope_theta=10000.0, tie_word_embeddings=False, torch_dtype="bfloat16")
    torch.manual_seed(0)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(dev):
        model = AutoModelForCausalLM.from_config(cfg).to(torch.bfloat16)
    # Random init leaves the norms at 1; perturb them so RMSNorm weights matter.
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("norm.weight") or n.endswith("layernorm.weight"):
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(args.dir, safe_serialization=True, max_shard_size="20GB")
    n = sum(p.numel() for p in model.parameters())
    print(json.dumps({"dir": args.dir, "size": args.size, "parameters": n}))


class StaticMinMax:
    """llm-compressor's `static_minmax` input observer of one module: running min and max of every value seen."""

    def __init__(self):
        self.min_vals = None
        self.max_vals = None

    def __call__(self, x):
        observed = x.reshape(-1, 1, x.shape[-1])  # activations per tensor: (B·T, 1, C)
        lo, hi = torch.amin(observed, dim=(0, -1)), torch.amax(observed, dim=(0, -1))
        if self.min_vals is None:
            self.min_vals, self.max_vals = lo, hi
        else:
            self.min_vals, self.max_vals = torch.min(lo, self.min_vals), torch.max(hi, self.max_vals)


def observe_linears(decoder):
    """A forward pre-hook with its own observer on every Linear of the decoder layers (calibrate_input_hook)."""
    def hook(observer):
        return lambda _m, args: observer(args[0] if isinstance(args, tuple) else args)
    linears = [m for m in decoder.layers.modules() if isinstance(m, torch.nn.Linear)]
    for m in linears:
        m.register_forward_pre_hook(hook(StaticMinMax()))
    return len(linears)


def all_experts_forward(self, hidden_states, top_k_index, top_k_weights):
    """llm-compressor's calibrate-all-experts forward of one fused experts module: each expert on all tokens."""
    final = torch.zeros_like(hidden_states)
    inter = self.down_proj.shape[-1]
    observers = getattr(self, "quantc_observers", None)
    for e in range(self.num_experts):
        if observers:
            observers[e][0](hidden_states)
            observers[e][1](hidden_states)
        gate = torch.nn.functional.linear(hidden_states, self.gate_up_proj[e, :inter])
        up = torch.nn.functional.linear(hidden_states, self.gate_up_proj[e, inter:])
        act = self.act_fn(gate) * up
        if observers:
            observers[e][2](act)
        out = torch.nn.functional.linear(act, self.down_proj[e])
        token_idx, top_k_pos = torch.where(top_k_index == e)
        final.index_add_(0, token_idx, (out[token_idx] * top_k_weights[token_idx, top_k_pos, None]).to(final.dtype))
    return final


def fused_experts(model):
    """Modules in the transformers 5 fused layout all_experts_forward handles (no biases, gate and up concatenated,
    called with the routing). Llama 4's experts take only the hidden states, already repeated for every expert
    and scaled by its router score: they run every expert on every token as they are."""
    return [m for m in model.modules()
            if isinstance(getattr(m, "gate_up_proj", None), torch.nn.Parameter) and getattr(m, "gate_up_proj").dim() == 3
            and "top_k_index" in inspect.signature(type(m).forward).parameters
            and isinstance(getattr(m, "down_proj", None), torch.nn.Parameter) and hasattr(m, "act_fn") and hasattr(m, "num_experts")
            and getattr(m, "gate_up_proj_bias", None) is None and getattr(m, "down_proj_bias", None) is None]


def run(args):
    from transformers import AutoModelForCausalLM

    dtype = getattr(torch, args.dtype)
    dev = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    with open(os.path.join(args.dir, "config.json")) as f:
        model_type = json.load(f)["model_type"]
    # gpt-oss's sinks and GLM-5's indexer mask run only in eager attention in transformers 5.17.
    attn = "eager" if model_type in EAGER_ONLY else args.attn
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    # The device's context and libraries first, outside every figure, as quantc's benchmark warms its provider up.
    torch.zeros(1, device=dev)
    sync()
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(args.dir, dtype=dtype, attn_implementation=attn).to(dev).eval()
    sync()
    load_seconds = time.perf_counter() - t0
    decoder = model.model
    patched = [] if args.routed else fused_experts(model)
    for m in patched:
        m.forward = all_experts_forward.__get__(m)
    observed = 0
    if args.observers:
        observed = observe_linears(decoder)
        for m in patched:
            m.quantc_observers = [[StaticMinMax() for _ in range(3)] for _ in range(m.num_experts)]
            observed += 3 * m.num_experts
    with open(args.tokens) as f:
        batches = [torch.tensor(b, dtype=torch.long) for b in json.load(f)]
    with torch.inference_mode():
        t0 = time.perf_counter()
        decoder(input_ids=batches[0].to(dev), use_cache=False)
        sync()
        first_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        for b in batches:
            decoder(input_ids=b.to(dev), use_cache=False)
        sync()
        seconds = time.perf_counter() - t0
    tokens = sum(b.numel() for b in batches)
    print(json.dumps({"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds, "load_seconds": load_seconds, "first_pass_seconds": first_seconds, "threads": torch.get_num_threads(), "attn": attn,
                      "experts": "all" if patched else "routed", "experts_modules": len(patched), "observed_modules": observed,
                      "torch": torch.__version__, "device_name": torch.cuda.get_device_name() if dev.type == "cuda" else os.uname().machine}))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("dir")
    m.add_argument("--size", choices=sorted(SIZES), default="tiny")
    m.add_argument("--arch", choices=sorted(ARCHS), default="llama")
    r = sub.add_parser("run")
    r.add_argument("dir")
    r.add_argument("tokens")
    r.add_argument("--device", default="cpu")
    r.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    r.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    r.add_argument("--threads", type=int, default=0)
    r.add_argument("--routed", action="store_true", help="transformers' routed experts forward instead of every expert on every token")
    r.add_argument("--observers", action="store_true", help="llm-compressor's static_minmax input observer on every Linear (and every fused expert)")
    args = p.parse_args()
    make(args) if args.cmd == "make" else run(args)


if __name__ == "__main__":
    main()
