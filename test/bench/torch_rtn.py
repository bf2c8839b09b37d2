"""PyTorch baseline for test/bench/apply.ts: the same round-to-nearest weight pass
(W4A16 group 128 with int32 packing, FP8_DYNAMIC per channel, NVFP4A16 with
FP8 group scales and FP4 packing) on the same synthetic bf16 checkpoint
(TENSORS x [4096, 4096], 8 by default), read from safetensors and written back, on one
GPU or the CPU; end to end as safetensors leaves it (in the page cache), and with the output
flushed to disk. On a GPU it also reports the card's device-to-device copy bandwidth.

    python test/bench/torch_rtn.py [cuda|cpu] [TENSORS] [SCHEMES] [REPEAT]   # prints one line per scheme

SCHEMES is a comma-separated subset (default all three); REPEAT runs each scheme that
many times and reports the fastest (for machines whose speed varies between runs).
"""

import os
import shutil
import sys
import tempfile
import time

import torch
from safetensors.torch import load_file, save_file

TENSORS = int(sys.argv[2]) if len(sys.argv) > 2 else 8
SCHEMES = sys.argv[3].split(",") if len(sys.argv) > 3 and sys.argv[3] else ["W4A16", "FP8_DYNAMIC", "NVFP4A16"]
REPEAT = int(sys.argv[4]) if len(sys.argv) > 4 else 1
ROWS, COLS = 4096, 4096


def w4a16(w):
    g = w.unflatten(-1, (-1, 128))
    amax = torch.maximum(g.amin(-1).clamp(max=0).abs(), g.amax(-1).clamp(min=0))
    scale = amax / 7.5
    scale = torch.where(scale == 0, torch.finfo(w.dtype).eps, scale)
    q = torch.round(torch.clamp(g / scale.unsqueeze(-1), -8, 7)).to(torch.int32) + 8
    q = q.flatten(-2).view(w.shape[0], -1, 8)
    shifts = torch.arange(0, 32, 4, device=w.device, dtype=torch.int32)
    packed = (q << shifts).sum(-1, dtype=torch.int64).to(torch.int32)
    return {"weight_packed": packed, "weight_scale": scale, "weight_shape": torch.tensor(w.shape)}


def fp8_dynamic(w):
    amax = torch.maximum(w.amin(-1, keepdim=True).clamp(max=0).abs(), w.amax(-1, keepdim=True).clamp(min=0))
    scale = amax / 448.0
    scale = torch.where(scale == 0, torch.finfo(w.dtype).eps, scale)
    q = torch.clamp(w / scale, -448, 448).to(torch.float8_e4m3fn)
    return {"weight": q, "weight_scale": scale}


def nvfp4a16(w):
    g = w.unflatten(-1, (-1, 16))
    amax_g = torch.maximum(g.amin(-1).clamp(max=0).abs(), g.amax(-1).clamp(min=0))
    gs = (2688.0 / amax_g.max().clamp(min=torch.finfo(w.dtype).tiny)).float().reshape(1)
    scale = (gs * (amax_g / 6.0)).clamp(-448, 448).to(torch.float8_e4m3fn).float()
    scale = torch.where(scale == 0, 0.125, scale)
    x = torch.clamp(g / (scale / gs).unsqueeze(-1), -6, 6)
    a = x.abs()
    code = ((a > 0.25).int() + (a >= 0.75).int() + (a > 1.25).int() + (a >= 1.75).int()
            + (a > 2.5).int() + (a >= 3.5).int() + (a > 5).int() + (x < 0).int() * 8)
    code = code.flatten(-2).view(w.shape[0], -1, 2).to(torch.uint8)
    packed = code[..., 0] | (code[..., 1] << 4)
    return {"weight_global_scale": gs, "weight_packed": packed, "weight_scale": scale.to(torch.float8_e4m3fn)}


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def main():
    tmp = tempfile.mkdtemp()
    try:
        run(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(tmp):
    dev = torch.device(sys.argv[1] if len(sys.argv) > 1 else "cuda")
    src = os.path.join(tmp, "model.safetensors")
    gen = torch.Generator().manual_seed(0)
    save_file({f"model.layers.{i}.mlp.down_proj.weight": (torch.randn(ROWS, COLS, generator=gen) * 0.02).bfloat16() for i in range(TENSORS)}, src)
    bytes_in = TENSORS * ROWS * COLS * 2
    for name, fn in [("W4A16", w4a16), ("FP8_DYNAMIC", fp8_dynamic), ("NVFP4A16", nvfp4a16)]:
        if name not in SCHEMES:
            continue
        fn(torch.zeros(128, 128, device=dev, dtype=torch.bfloat16))  # warm up kernels
        sync(dev)
        best = None
        for _ in range(REPEAT):
            t0 = time.perf_counter()
            weights = load_file(src)
            out, gpu = {}, 0.0
            for k, w in weights.items():
                w = w.to(dev)
                sync(dev)
                g0 = time.perf_counter()
                res = fn(w)
                sync(dev)
                gpu += time.perf_counter() - g0
                for s, t in res.items():
                    out[k[: -len("weight")] + s] = t.cpu()
            dst = os.path.join(tmp, f"out-{name}.safetensors")
            save_file(out, dst)
            total = time.perf_counter() - t0
            # safetensors does not flush: time the flush to disk apart (quantc flushes before renaming its output into place).
            fd = os.open(dst, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
            flushed = time.perf_counter() - t0
            os.remove(dst)
            if best is None or total < best[0]:
                best = (total, gpu, flushed)
        total, gpu, flushed = best
        print(f"torch {name:12s} {dev.type}  end to end {bytes_in / total / 1e9:.3f} GB/s  quantize only {bytes_in / gpu / 1e9:.3f} GB/s  ({total:.2f} s)  flushed to disk {bytes_in / flushed / 1e9:.3f} GB/s ({flushed:.2f} s)")
    if dev.type != "cuda":
        return
    buf = torch.empty(2 * 1024**3, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(buf)
    dst.copy_(buf)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(10):
        dst.copy_(buf)
    torch.cuda.synchronize()
    print(f"device copy bandwidth {10 * 2 * buf.numel() / (time.perf_counter() - t0) / 1e9:.0f} GB/s (read + write)")


if __name__ == "__main__":
    main()
