"""Sums onnxruntime's per-node trace (QUANTC_ORT_PROFILE=PREFIX) by operator, one block per session file.

For each `PREFIX-<graph>_<date>.json`: the runs and their total wall time (`model_run`), the nodes' total
time (host time of each node's compute call; on CUDA the launch, not the kernel), and the operators with
the most time, with their call counts:

    QUANTC_ORT_PROFILE=/tmp/p/a QUANTC_ORT_PROFILE_MATCH=awq_search node dist/test/bench/run.js --only --awq ...
    python3 test/bench/kernel-probe/ort_profile.py /tmp/p/a-*.json
"""
import collections, json, sys

for path in sys.argv[1:]:
    events = json.load(open(path))
    runs = [e['dur'] for e in events if e.get('cat') == 'Session' and e.get('name') == 'model_run']
    ops = collections.defaultdict(lambda: [0, 0])
    for e in events:
        if e.get('cat') != 'Node' or not e.get('name', '').endswith('_kernel_time'):
            continue
        op = e.get('args', {}).get('op_name', '?')
        ops[op][0] += e['dur']
        ops[op][1] += 1
    nodes = sum(v[0] for v in ops.values())
    calls = sum(v[1] for v in ops.values())
    name = path.rsplit('/', 1)[-1]
    print(f'{name}: {len(runs)} runs {sum(runs) / 1e3:.1f} ms, nodes {nodes / 1e3:.1f} ms in {calls} calls')
    top = sorted(ops.items(), key=lambda kv: -kv[1][0])[:14]
    print('   ' + ', '.join(f'{k} {v[0] / 1e3:.1f} ms x{v[1]}' for k, v in top))
