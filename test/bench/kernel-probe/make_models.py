"""Small ONNX graphs of kernel alternatives for onnxruntime's CUDA provider, on llama-1B shapes:
min/max of a [2048, 5632] bf16 tensor (red_*), SiLU(gate)·up (silu_*), causal attention of 32 query
on 4 KV heads of 64 (att_*), RoPE's half swap (rope_*). Each input is made on the device from two
small vectors, so a run moves almost nothing over the bus.

    python3 make_models.py DIR
    node run.mjs DIR cuda 20      # first and fastest run of each; bits against the current graph
    ncu --csv --metrics gpu__time_duration.sum --cache-control all --clock-control none \
        --log-file M.csv node run.mjs DIR cuda 4 M && python3 ncu_last_run.py M.csv 4
"""
import sys, os, numpy as np, onnx
from onnx import helper as h, TensorProto as T, numpy_helper as nh
out = sys.argv[1]; os.makedirs(out, exist_ok=True)
BF, F, F16, I64, I32 = T.BFLOAT16, T.FLOAT, T.FLOAT16, T.INT64, T.INT32
R, C = 2048, 5632
def i64(name, v): return h.make_node('Constant', [], [name], value=nh.from_array(np.array(v, dtype=np.int64), name))
def gen(nodes, name, rows, cols, fn='Sin', scale=1.0):
    # a [rows,1] * b [1,cols] -> fn -> * scale -> bf16; inputs a_<name>, b_<name>
    nodes += [h.make_node('Mul', [f'a_{name}', f'b_{name}'], [f'{name}_p']), h.make_node(fn, [f'{name}_p'], [f'{name}_s']),
              h.make_node('Mul', [f'{name}_s', f'sc_{name}'], [f'{name}_f']), h.make_node('Cast', [f'{name}_f'], [name], to=BF)]
    return [h.make_tensor_value_info(f'a_{name}', F, [rows, 1]), h.make_tensor_value_info(f'b_{name}', F, [1, cols])], [nh.from_array(np.array(scale, dtype=np.float32), f'sc_{name}')]
def save(name, nodes, inputs, outputs, inits=(), opset=21):
    g = h.make_graph(nodes, name, inputs, [h.make_tensor_value_info(o, F, None) for o in outputs], list(inits))
    m = h.make_model(g, opset_imports=[h.make_opsetid('', opset), h.make_opsetid('com.microsoft', 1)], ir_version=10)
    onnx.save(m, os.path.join(out, name + '.onnx'))
def f32(nodes, x, y): nodes.append(h.make_node('Cast', [x], [y], to=F)); return y
# --- reductions over X [R, C] bf16
def red(name, body):
    nodes = []; ins, inits = gen(nodes, 'X', R, C, 'Identity', 1.0); outs = body(nodes); save(name, nodes, ins, outs, inits)
def b_base(n):
    n += [h.make_node('Slice', ['X', 's0', 's1'], ['Xs']), i64('s0', [0, 0]), i64('s1', [1, 1])]; return [f32(n, 'Xs', 'o')]
def b_bf16(n):
    n += [h.make_node('ReduceMax', ['X'], ['mx'], keepdims=0), h.make_node('ReduceMin', ['X'], ['mn'], keepdims=0)]; return [f32(n, 'mx', 'o1'), f32(n, 'mn', 'o2')]
def b_cur(n):
    f32(n, 'X', 'Xf'); n += [h.make_node('Flatten', ['Xf'], ['Xl'], axis=0), h.make_node('ReduceMax', ['Xl'], ['o1'], keepdims=1), h.make_node('ReduceMin', ['Xl'], ['o2'], keepdims=1)]; return ['o1', 'o2']
def b_rows(n):
    f32(n, 'X', 'Xf'); n += [i64('ax', [1]), h.make_node('ReduceMax', ['Xf', 'ax'], ['r1'], keepdims=1), h.make_node('ReduceMin', ['Xf', 'ax'], ['r2'], keepdims=1),
                             h.make_node('ReduceMax', ['r1'], ['o1'], keepdims=0), h.make_node('ReduceMin', ['r2'], ['o2'], keepdims=0)]; return ['o1', 'o2']
def b_topk(n):
    n += [i64('sh', [1, -1]), i64('k', [1]), h.make_node('Reshape', ['X', 'sh'], ['Xr']), h.make_node('TopK', ['Xr', 'k'], ['tv', 'ti'], axis=-1, largest=1)]; return [f32(n, 'tv', 'o1')]
def b_halves(n):
    n += [h.make_node('Split', ['X'], ['Xa', 'Xb'], axis=0, num_outputs=2), h.make_node('Max', ['Xa', 'Xb'], ['hx']), h.make_node('Min', ['Xa', 'Xb'], ['hn'])]
    f32(n, 'hx', 'hxf'); f32(n, 'hn', 'hnf'); n += [h.make_node('ReduceMax', ['hxf'], ['o1'], keepdims=0), h.make_node('ReduceMin', ['hnf'], ['o2'], keepdims=0)]; return ['o1', 'o2']
def b_cat(n):
    f32(n, 'X', 'Xf'); n += [h.make_node('Neg', ['Xf'], ['Xn']), h.make_node('Concat', ['Xf', 'Xn'], ['Xc'], axis=0), i64('sh2', [2, -1]), h.make_node('Reshape', ['Xc', 'sh2'], ['X2']),
                             i64('ax1', [1]), h.make_node('ReduceMax', ['X2', 'ax1'], ['o1'], keepdims=0)]; return ['o1']
def b_f16(n):
    n += [h.make_node('Cast', ['X'], ['Xh'], to=F16), h.make_node('ReduceMax', ['Xh'], ['mx'], keepdims=0), h.make_node('ReduceMin', ['Xh'], ['mn'], keepdims=0)]; return [f32(n, 'mx', 'o1'), f32(n, 'mn', 'o2')]
def b_rowsum(n):  # reference: ORT's own row-reduction kernel speed (ReduceSum fast path), f32
    f32(n, 'X', 'Xf'); n += [i64('ax', [1]), h.make_node('ReduceSum', ['Xf', 'ax'], ['o1'], keepdims=0)]; return ['o1']
for k, b in [('red_base', b_base), ('red_bf16', b_bf16), ('red_cur', b_cur), ('red_rows', b_rows), ('red_halves', b_halves), ('red_cat', b_cat), ('red_f16', b_f16), ('red_rowsum', b_rowsum)]:
    red(k, b)
# --- SiLU(gate) * up, gate/up [R, C] bf16
def silu(name, body):
    nodes = []; i1, n1 = gen(nodes, 'G', R, C, 'Sin', 6.0); i2, n2 = gen(nodes, 'U', R, C, 'Cos', 3.0); outs = body(nodes); save(name, nodes, i1 + i2, outs, n1 + n2)
def s_cur(n):
    f32(n, 'G', 'Gf'); n += [h.make_node('Sigmoid', ['Gf'], ['sg']), h.make_node('Mul', ['Gf', 'sg'], ['sl']), h.make_node('Cast', ['sl'], ['slb'], to=BF), h.make_node('Mul', ['slb', 'U'], ['y'])]; return [f32(n, 'y', 'o')]
def s_qg(n):
    n += [h.make_node('QuickGelu', ['G'], ['slb'], domain='com.microsoft', alpha=1.0), h.make_node('Mul', ['slb', 'U'], ['y'])]; return [f32(n, 'y', 'o')]
def s_sigbf(n):
    n += [h.make_node('Sigmoid', ['G'], ['sg']), h.make_node('Mul', ['G', 'sg'], ['slb']), h.make_node('Mul', ['slb', 'U'], ['y'])]; return [f32(n, 'y', 'o')]
def s_base(n): return [f32(n, 'U', 'o')]
for k, b in [('silu_base', s_base), ('silu_cur', s_cur), ('silu_qg', s_qg), ('silu_sigbf', s_sigbf)]:
    silu(k, b)
# --- attention: q [1, T, H*D], k/v [1, T, KV*D]
TQ, H, KV, D = 2048, 32, 4, 64
def att(name, body, opset=21):
    nodes = []; i1, n1 = gen(nodes, 'Q2', TQ, H * D, 'Sin', 2.0); i2, n2 = gen(nodes, 'K2', TQ, KV * D, 'Cos', 2.0); i3, n3 = gen(nodes, 'V2', TQ, KV * D, 'Sin', 1.0)
    nodes += [i64('u0', [0]), h.make_node('Unsqueeze', ['Q2', 'u0'], ['Q']), h.make_node('Unsqueeze', ['K2', 'u0'], ['K']), h.make_node('Unsqueeze', ['V2', 'u0'], ['V'])]
    ins = i1 + i2 + i3; outs = body(nodes, ins); save(name, nodes, ins, outs, n1 + n2 + n3, opset)
def a_base(n, ins): return [f32(n, 'Q', 'o')]
def a_gqa(n, ins):
    ins += [h.make_tensor_value_info('seqlens_k', I32, [1]), h.make_tensor_value_info('total_len', I32, [])]
    n += [h.make_node('GroupQueryAttention', ['Q', 'K', 'V', '', '', 'seqlens_k', 'total_len'], ['y', 'pk', 'pv'], domain='com.microsoft', num_heads=H, kv_num_heads=KV, scale=D ** -0.5)]
    return [f32(n, 'y', 'o')]
def expand_kv(n, x, y):
    n += [i64(f'{x}s5', [1, TQ, KV, 1, D]), i64(f'{x}e5', [1, TQ, KV, H // KV, D]), i64(f'{x}s3', [1, TQ, H * D]),
          h.make_node('Reshape', [x, f'{x}s5'], [f'{x}5']), h.make_node('Expand', [f'{x}5', f'{x}e5'], [f'{x}_ex']), h.make_node('Reshape', [f'{x}_ex', f'{x}s3'], [y])]
def a_mha(n, ins):
    expand_kv(n, 'K', 'Kx'); expand_kv(n, 'V', 'Vx')
    n += [h.make_node('MultiHeadAttention', ['Q', 'Kx', 'Vx'], ['y'], domain='com.microsoft', num_heads=H, unidirectional=1, scale=D ** -0.5)]
    return [f32(n, 'y', 'o')]
def a_onnx(n, ins):
    n += [h.make_node('Attention', ['Q', 'K', 'V'], ['y'], q_num_heads=H, kv_num_heads=KV, is_causal=1, scale=D ** -0.5)]
    return [f32(n, 'y', 'o')]
att('att_base', a_base); att('att_gqa', a_gqa); att('att_mha', a_mha); att('att_onnx23', a_onnx, 23)
# --- RoPE on q [1, T, H, D] bf16 with tables [T, 1, D] bf16
def rope(name, body):
    nodes = []; i1, n1 = gen(nodes, 'Q2', TQ, H * D, 'Sin', 2.0); i2, n2 = gen(nodes, 'CS', TQ, D, 'Cos', 1.0); i3, n3 = gen(nodes, 'SN', TQ, D, 'Sin', 1.0)
    nodes += [i64('sh4', [1, TQ, H, D]), h.make_node('Reshape', ['Q2', 'sh4'], ['Q']), i64('u1', [1]), h.make_node('Unsqueeze', ['CS', 'u1'], ['cos']), h.make_node('Unsqueeze', ['SN', 'u1'], ['sin'])]
    outs = body(nodes); save(name, nodes, i1 + i2 + i3, outs, n1 + n2 + n3)
def r_cur(n):
    n += [i64('h0', [0]), i64('h1', [D // 2]), i64('h2', [D]), i64('am', [-1]),
          h.make_node('Slice', ['Q', 'h1', 'h2', 'am'], ['x2']), h.make_node('Slice', ['Q', 'h0', 'h1', 'am'], ['x1']), h.make_node('Concat', ['x2', 'x1'], ['sw'], axis=-1),
          h.make_node('Mul', ['Q', 'cos'], ['qc']), h.make_node('Mul', ['sw', 'sin'], ['qs']), h.make_node('Add', ['qc', 'qs'], ['y'])]
    return [f32(n, 'y', 'o')]
def r_gather(n):
    perm = np.concatenate([np.arange(D // 2, D), np.arange(0, D // 2)]).astype(np.int64)
    n += [h.make_node('Constant', [], ['perm'], value=nh.from_array(perm, 'perm')), h.make_node('Gather', ['Q', 'perm'], ['sw'], axis=-1),
          h.make_node('Mul', ['Q', 'cos'], ['qc']), h.make_node('Mul', ['sw', 'sin'], ['qs']), h.make_node('Add', ['qc', 'qs'], ['y'])]
    return [f32(n, 'y', 'o')]
def r_base(n): return [f32(n, 'Q', 'o')]
rope('rope_base', r_base); rope('rope_cur', r_cur); rope('rope_gather', r_gather)
print('models', len(os.listdir(out)))
