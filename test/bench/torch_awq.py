"""PyTorch eager baseline for test/bench/awq.ts: llm-compressor's AWQ search (algorithms.md §3)
written out in plain PyTorch, run on the same random bf16 checkpoint and token batches as quantc, on
the same device.

    python test/bench/torch_awq.py run DIR TOKENS.json --device cuda
        (DIR made by `torch_gptq.py make DIR --size 1b4`)
        the sequential pipeline: per decoder layer, pass A with hooks caching every parent's input
        (self_attn, mlp, o_proj, down_proj) and the per-channel sum of |x| of each smooth layer's
        output; then per mapping (input_layernorm → q/k/v, v_proj → o_proj when the widths match,
        post_attention_layernorm → gate/up, up_proj → down_proj) the 20-point grid (identity, then
        duo scaling with ratios i/18), each point's balance weights W·s pseudo-quantized W4A16_ASYM
        (int4, group 128, min-max) and divided by s, the parent re-run on every cached batch and the
        mean squared error taken against its unquantized output; the best scales folded into the smooth
        and balance layers; pass B propagating the smoothed layer. Prints one JSON line with per-layer
        seconds split into statistics / search / propagation and the peak device memory.

The model runs in bf16 as llm-compressor runs it. This is the reference loop, not llm-compressor
itself (which adds hooks, caches on the offload device and logging on top).
"""

import argparse
import json
import time

import torch


def fake_quant_asym(w, group=128, bits=4):
    """compressed-tensors' min-max asymmetric fake quantization per group, in w's dtype."""
    rows, cols = w.shape
    g = w.reshape(rows, cols // group, group)
    lo = g.amin(-1, keepdim=True).clamp(max=0)
    hi = g.amax(-1, keepdim=True).clamp(min=0)
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    scale = (hi - lo) / (qmax - qmin)
    zp = torch.clamp(torch.round(qmin - lo / scale), qmin, qmax)
    scale = torch.where(scale == 0, torch.full_like(scale, torch.finfo(w.dtype).eps), scale)
    q = torch.clamp(torch.round(g / scale + zp), qmin, qmax)
    return ((q - zp) * scale).reshape(rows, cols).to(w.dtype)


def layer_means(weights, group=128):
    total, count = 0, 0
    for w in weights:
        a = w.abs().reshape(-1, group)
        a = a / (a.amax(dim=1, keepdim=True) + 1e-6)
        total = total + a.reshape(w.shape).sum(0, dtype=torch.float64)
        count += w.shape[0]
    return total / count


def grid():
    return [(0.0, False)] + [(i / 18, True) for i in range(19)]


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
        positions = [rotary(h, torch.arange(h.shape[1], device=dev).unsqueeze(0)) for h in hidden]
        for li, layer in enumerate(decoder.layers):
            attn, mlp = layer.self_attn, layer.mlp
            mappings = [
                ("input_layernorm", layer.input_layernorm, [attn.q_proj, attn.k_proj, attn.v_proj], "attn"),
                ("post_attention_layernorm", layer.post_attention_layernorm, [mlp.gate_proj, mlp.up_proj], "mlp"),
                ("up_proj", mlp.up_proj, [mlp.down_proj], "down"),
            ]
            if attn.v_proj.out_features == attn.o_proj.in_features:
                mappings.insert(1, ("v_proj", attn.v_proj, [attn.o_proj], "o"))
            cache = {"attn": [], "mlp": [], "o": [], "down": []}
            sums = {}

            def keep(key):
                def f(_m, inp):
                    x = inp[0]
                    cache[key].append(x)
                    s = x.abs().reshape(-1, x.shape[-1]).float().sum(0)
                    sums[key] = (sums.get(key, (0, 0))[0] + s, sums.get(key, (0, 0))[1] + x.reshape(-1, x.shape[-1]).shape[0])
                return f

            handles = [attn.q_proj.register_forward_pre_hook(keep("attn")), mlp.gate_proj.register_forward_pre_hook(keep("mlp")),
                       attn.o_proj.register_forward_pre_hook(keep("o")), mlp.down_proj.register_forward_pre_hook(keep("down"))]
            sync()
            t0 = time.perf_counter()
            for h, pe in zip(hidden, positions):
                layer(h, position_embeddings=pe, attention_mask=None)
            for hd in handles:
                hd.remove()
            sync()
            t1 = time.perf_counter()

            def parent(kind, x, pe):
                if kind == "attn":
                    return attn(x, position_embeddings=pe, attention_mask=None)[0]
                if kind == "mlp":
                    return mlp(x)
                return (attn.o_proj if kind == "o" else mlp.down_proj)(x)

            for _name, smooth, balance, kind in mappings:
                xs = cache[kind]
                s_sum, n = sums[kind]
                x_mean = s_sum / n
                ref = [parent(kind, x, pe) for x, pe in zip(xs, positions)]
                w0 = [b.weight.clone() for b in balance]
                w_mean = layer_means(w0)
                best, best_err = None, float("inf")
                for ratio, duo in grid():
                    s = (x_mean.pow(ratio) / (w_mean.pow(1 - ratio) + 1e-4)).clamp(min=1e-4) if duo else x_mean.pow(ratio).clamp(min=1e-4)
                    s = s / (s.max() * s.min()).sqrt()
                    sv = s.view(1, -1)
                    for b, w in zip(balance, w0):
                        b.weight.copy_((fake_quant_asym((w * sv).to(w.dtype)) / sv).to(w.dtype))
                    err, numel = 0.0, 0
                    for x, pe, r in zip(xs, positions, ref):
                        out = parent(kind, x, pe)
                        err += torch.nn.functional.mse_loss(r, out, reduction="sum").float()
                        numel += r.numel()
                    err = float(err / numel)
                    if err < best_err:
                        best, best_err = s.clone(), err
                for b, w in zip(balance, w0):
                    b.weight.copy_((w * best.view(1, -1)).to(w.dtype))
                if smooth.weight.dim() == 1:
                    smooth.weight.div_(best)
                else:
                    smooth.weight[-best.numel():].div_(best.view(-1, 1))
            del cache
            sync()
            t2 = time.perf_counter()
            out = []
            for h, pe in zip(hidden, positions):
                r = layer(h, position_embeddings=pe, attention_mask=None)
                out.append(r[0] if isinstance(r, tuple) else r)
            hidden = out
            sync()
            t3 = time.perf_counter()
            layers.append({"layer": li, "statistics": t1 - t0, "search": t2 - t1, "propagate": t3 - t2, "mappings": len(mappings)})
    total = time.perf_counter() - t_start
    peak = torch.cuda.max_memory_allocated() if dev.type == "cuda" else 0
    print(json.dumps({"seconds": total, "layers": layers, "peak_bytes": peak, "torch": torch.__version__,
                      "device_name": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"}))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("dir")
    r.add_argument("tokens")
    r.add_argument("--device", default="cuda")
    r.set_defaults(fn=run)
    args = p.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
