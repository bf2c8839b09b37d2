"""PyTorch eager baseline for test/bench/gptq.ts: llm-compressor's GPTQ
(algorithms.md §1-2) written out in plain PyTorch, run on the same random
bf16 checkpoint and token batches as quantc, on the same device.

    python test/bench/torch_gptq.py make DIR --size 1b4|moe64
        writes a random bf16 checkpoint: "1b4" is TinyLlama-1.1B's layer shape
        with 4 layers, "moe64" a 2-layer qwen3_moe with 64 experts (top 8)
    python test/bench/torch_gptq.py run DIR TOKENS.json --device cuda
        the sequential pipeline: per decoder layer, pass A with forward hooks
        accumulating one float32 Hessian per Linear (2·x·xᵀ summed, divided
        by the number of sequences), the GPTQ solve of every Linear (W4A16:
        int4 symmetric, group 128, actorder static, block 128, damp 0.01,
        scales from the original weight), pass B propagating the quantized
        layer; MoE experts run on every token (llm-compressor's
        calibrate_all_experts: every expert's Hessian is accumulated on its own,
        as there). Prints one JSON line with per-layer seconds split into
        statistics / solve / propagation and the peak device memory.

The model runs in bf16 as llm-compressor runs it; Hessians and the solve in
float32. This is the reference loop, not llm-compressor itself (which adds
its own hooks, offloading and logging on top).
"""

import argparse
import json
import math
import time

import torch

SIZES = {
    "1b4": ("llama", dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=4, num_attention_heads=32,
                          num_key_value_heads=4, vocab_size=32000)),
    "moe64": ("qwen3_moe", dict(hidden_size=1024, intermediate_size=2816, moe_intermediate_size=512, num_experts=64,
                                num_experts_per_tok=8, num_hidden_layers=2, num_attention_heads=16, num_key_value_heads=4,
                                head_dim=64, vocab_size=32000, norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[])),
}


def make(args):
    from transformers import AutoConfig, AutoModelForCausalLM

    kind, fields = SIZES[args.size]
    cfg = AutoConfig.for_model(kind, **fields, max_position_embeddings=4096, rms_norm_eps=1e-6, tie_word_embeddings=False)
    torch.manual_seed(0)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(dev):
        model = AutoModelForCausalLM.from_config(cfg).to(torch.bfloat16)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("norm.weight"):
                p.add_(torch.randn_like(p) * 0.1)
            elif p.dim() >= 2 and "embed" not in n:
                p.normal_(0, 0.02)
    model.save_pretrained(args.dir, safe_serialization=True, max_shard_size="20GB")
    print(json.dumps({"dir": args.dir, "size": args.size, "parameters": sum(p.numel() for p in model.parameters())}))


def qparams(w, group=128, bits=4):
    """Per-group symmetric int scales of w (rows, cols) in w's dtype, as compressed-tensors computes them."""
    rows, cols = w.shape
    g = w.reshape(rows, cols // group, group)
    absmax = torch.maximum(g.amin(-1).clamp(max=0).abs(), g.amax(-1).clamp(min=0))
    scale = absmax / ((2 ** bits - 1) / 2)
    eps = torch.finfo(w.dtype).eps
    return torch.where(scale == 0, torch.full_like(scale, eps), scale)


def gptq(weight, h, block=128, damp=0.01, group=128):
    w = weight.float().clone()
    rows, cols = w.shape
    scale = qparams(weight, group)  # model dtype
    perm = torch.argsort(torch.diag(h), descending=True)
    w = w[:, perm]
    h = h[perm][:, perm]
    g_idx = (torch.arange(cols, device=w.device) // group)[perm]
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    h = h + damp * torch.mean(torch.diag(h)) * torch.eye(cols, device=h.device)
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        w1 = w[:, i1:i2].clone()
        q1 = torch.zeros_like(w1)
        err1 = torch.zeros_like(w1)
        hb = hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = w1[:, i]
            d = hb[i, i]
            s = scale[:, g_idx[i1 + i]]
            q = (torch.clamp(torch.round(col / s), -8, 7) * s).to(weight.dtype).float()
            q1[:, i] = q
            e = (col - q) / d
            w1[:, i:] -= e.unsqueeze(1).matmul(hb[i, i:].unsqueeze(0))
            err1[:, i] = e
        w[:, i1:i2] = q1
        w[:, i2:] -= err1.matmul(hinv[i1:i2, i2:])
    return w[:, torch.argsort(perm)].to(weight.dtype)


def run(args):
    from transformers import AutoModelForCausalLM

    dev = torch.device(args.device)
    model = AutoModelForCausalLM.from_pretrained(args.dir, dtype=torch.bfloat16).to(dev).eval()
    decoder = model.model
    with open(args.tokens) as f:
        batches = [torch.tensor(b, dtype=torch.long, device=dev) for b in json.load(f)]
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    layers = []
    t_start = time.perf_counter()
    with torch.inference_mode():
        hidden = [decoder.embed_tokens(b) for b in batches]
        rotary = decoder.rotary_emb
        for li, layer in enumerate(decoder.layers):
            linears = {n: m for n, m in layer.named_modules() if isinstance(m, torch.nn.Linear) and not n.endswith("mlp.gate")}
            experts = getattr(getattr(layer, "mlp", None), "experts", None)
            fused = experts is not None and hasattr(experts, "gate_up_proj")
            hess, count = {}, {}

            def hook(name):
                def f(_m, inp, _out):
                    x = inp[0]
                    k = x.shape[-1]
                    n = x.shape[0] if x.dim() == 3 else 1
                    x = x.reshape(-1, k).float() * math.sqrt(2)
                    hess[name] = hess.get(name, 0) + x.t() @ x
                    count[name] = count.get(name, 0) + n
                return f

            handles = [m.register_forward_hook(hook(n)) for n, m in linears.items()]

            def experts_hook(_m, inp):
                # Every expert on every token, as the all-experts calibration does: each expert's own Hessians.
                x = inp[0].reshape(-1, inp[0].shape[-1])
                xs = x.float() * math.sqrt(2)
                for e in range(experts.gate_up_proj.shape[0]):
                    hess[f"e{e}.gate_up"] = hess.get(f"e{e}.gate_up", 0) + xs.t() @ xs
                    g, u = torch.nn.functional.linear(x, experts.gate_up_proj[e]).chunk(2, dim=-1)
                    a = (torch.nn.functional.silu(g) * u).float() * math.sqrt(2)
                    hess[f"e{e}.down"] = hess.get(f"e{e}.down", 0) + a.t() @ a

            if fused:
                handles.append(layer.mlp.register_forward_pre_hook(experts_hook))
            sync()
            t0 = time.perf_counter()
            for h in hidden:
                pos = torch.arange(h.shape[1], device=dev).unsqueeze(0)
                layer(h, position_embeddings=rotary(h, pos), attention_mask=None)
            for hd in handles:
                hd.remove()
            sync()
            t1 = time.perf_counter()
            for name, m in linears.items():
                m.weight.copy_(gptq(m.weight, hess[name] / count[name]))
            if fused:
                n = len(hidden)
                for e in range(experts.gate_up_proj.shape[0]):
                    gu = experts.gate_up_proj[e]
                    half = gu.shape[0] // 2
                    he = hess[f"e{e}.gate_up"] / n
                    gu.copy_(torch.cat([gptq(gu[:half], he.clone()), gptq(gu[half:], he.clone())]))
                    experts.down_proj[e].copy_(gptq(experts.down_proj[e], hess[f"e{e}.down"] / n))
            sync()
            t2 = time.perf_counter()
            out = []
            for h in hidden:
                pos = torch.arange(h.shape[1], device=dev).unsqueeze(0)
                r = layer(h, position_embeddings=rotary(h, pos), attention_mask=None)
                out.append(r[0] if isinstance(r, tuple) else r)
            hidden = out
            sync()
            t3 = time.perf_counter()
            layers.append({"layer": li, "statistics": t1 - t0, "solve": t2 - t1, "propagate": t3 - t2, "modules": len(linears) + (3 * experts.gate_up_proj.shape[0] if fused else 0)})
    total = time.perf_counter() - t_start
    peak = torch.cuda.max_memory_allocated() if dev.type == "cuda" else 0
    print(json.dumps({"seconds": total, "layers": layers, "peak_bytes": peak, "torch": torch.__version__,
                      "device_name": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"}))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("dir")
    m.add_argument("--size", default="1b4", choices=sorted(SIZES))
    m.set_defaults(fn=make)
    r = sub.add_parser("run")
    r.add_argument("dir")
    r.add_argument("tokens")
    r.add_argument("--device", default="cuda")
    r.set_defaults(fn=run)
    args = p.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
