"""Per-kernel GPU time of one graph run of a calibration pass, from an `ncu --csv` log of the calibration bench.

The log is cut into runs at each embedding lookup (the first graph's `_GatherKernel`, one per run); the
largest run is summed by kernel name and divided by LAYERS:

    ncu --csv --clock-control none --cache-control all --metrics gpu__time_duration.sum --target-processes all \
        --log-file ncu.csv node dist/test/bench/run.js --only --calibrate --model-size 1b --device cuda \
        --precision bf16 --batch-size 1 --seq-len 2048 --tokens 10240 --repeat 1 --torch-dtypes none
    python3 test/bench/kernel-probe/ncu_runs.py ncu.csv 22
"""
import collections, csv, io, sys

path, layers = sys.argv[1], int(sys.argv[2])
rows = list(csv.reader(io.StringIO(open(path, errors='replace').read())))
hdr = None
kernels = []
for r in rows:
    if r and r[0] == 'ID':
        hdr = r
        continue
    if not hdr or len(r) != len(hdr):
        continue
    d = dict(zip(hdr, r))
    if d.get('Metric Name') != 'gpu__time_duration.sum':
        continue
    v = float(d['Metric Value'].replace(',', ''))
    unit = d.get('Metric Unit', 'nsecond')
    us = v / 1000 if unit.startswith('n') else (v if unit.startswith('u') else v * 1000)
    kernels.append((d['Kernel Name'][:110], us))
cuts = [i for i, (k, _) in enumerate(kernels) if k.startswith('void onnxruntime::_GatherKernel')]
runs = [kernels[a:b] for a, b in zip(cuts, cuts[1:] + [len(kernels)])]
print(f'kernels {len(kernels)}, runs {len(runs)}: ' + ', '.join(f'{len(r)} kernels {sum(u for _, u in r):.0f} us' for r in runs))
run = max(runs, key=lambda r: sum(u for _, u in r)) if runs else kernels
total = sum(u for _, u in run)
by_name = collections.defaultdict(lambda: [0.0, 0])
for k, u in run:
    by_name[k][0] += u
    by_name[k][1] += 1
print(f'largest run: {len(run)} kernels, {total:.0f} us, {total / layers:.1f} us per layer')
for k, (u, n) in sorted(by_name.items(), key=lambda x: -x[1][0]):
    print(f'  {u / layers:8.1f} us/layer {100 * u / total:5.1f}%  {n:5d}x  {k}')
