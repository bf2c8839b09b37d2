"""Kernel times of the last of RUNS equal runs in an `ncu --csv` log (gpu__time_duration.sum), in launch order."""
import csv, sys, io
path, runs = sys.argv[1], int(sys.argv[2])
rows = list(csv.reader(io.StringIO(open(path).read())))
hdr = None; ks = []
for r in rows:
    if r and r[0] == 'ID': hdr = r; continue
    if not hdr or len(r) != len(hdr): continue
    d = dict(zip(hdr, r))
    if d.get('Metric Name') != 'gpu__time_duration.sum': continue
    v = float(d['Metric Value'].replace(',', '')); u = d.get('Metric Unit', 'nsecond')
    us = v / 1000 if u.startswith('n') else (v if u.startswith('u') else v * 1000)
    ks.append((d['Kernel Name'][:90], us))
names = [k for k, _ in ks]
# One run = the shortest tail that repeats the kernels just before it.
per = next((k for k in range(1, len(ks) // 2 + 1) if names[-k:] == names[-2 * k:-k]), len(ks) // max(runs, 1))
last = ks[-per:] if per else []
print(f'  kernels {len(ks)}, per run {per}, last run {sum(u for _, u in last):.1f} us')
for k, u in last: print(f'    {u:8.1f} us  {k}')
