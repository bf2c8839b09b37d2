// Runs the models of make_models.py on one provider: node run.mjs DIR cuda|cpu [RUNS] [MODEL ...]
// Prints each model's first and fastest run and, against the current graph of its family (red_cur, silu_cur,
// att_gqa, rope_cur), how many output values differ.
import { readdirSync, readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
const [dir, provider = 'cuda', runsArg = '6', ...only] = process.argv.slice(2);
const runs = Number(runsArg);
const names = (only.length ? only : readdirSync(dir).filter((f) => f.endsWith('.onnx')).map((f) => f.slice(0, -5))).sort();
let seed = 1;
const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
const ref = { red: 'red_cur', silu: 'silu_cur', att: 'att_gqa', rope: 'rope_cur' };
const outputs = new Map();
for (const name of names) {
  seed = 7;
  let session;
  try {
    session = await ort.InferenceSession.create(readFileSync(`${dir}/${name}.onnx`), { executionProviders: [provider], logSeverityLevel: 2 });
  } catch (e) {
    console.log(`${name.padEnd(12)} CREATE FAILED: ${String(e.message ?? e).split('\n')[0].slice(0, 200)}`);
    continue;
  }
  const feeds = {};
  for (const input of session.inputNames) {
    if (input === 'seqlens_k') feeds[input] = new ort.Tensor('int32', Int32Array.from([2047]), [1]);
    else if (input === 'total_len') feeds[input] = new ort.Tensor('int32', Int32Array.from([2048]), []);
    else {
      const meta = session.inputMetadata.find((m) => m.name === input);
      const dims = meta.shape;
      const n = dims[0] * dims[1];
      feeds[input] = new ort.Tensor('float32', Float32Array.from({ length: n }, () => (input.startsWith('a_') ? rnd() * 3 : rnd() * 2)), dims);
    }
  }
  const times = [];
  let first;
  try {
    for (let r = 0; r < runs; r++) {
      const t0 = performance.now();
      const out = await session.run(feeds);
      times.push(performance.now() - t0);
      first ??= out;
    }
  } catch (e) {
    console.log(`${name.padEnd(12)} RUN FAILED: ${String(e.message ?? e).split('\n')[0].slice(0, 200)}`);
    continue;
  }
  outputs.set(name, Object.values(first).map((t) => t.data));
  const steady = times.slice(1);
  let cmp = '';
  const r = ref[name.split('_')[0]];
  if (r && r !== name && outputs.has(r) && !name.endsWith('_base')) {
    const a = outputs.get(r)[0], b = outputs.get(name)[0];
    if (a.length !== b.length) cmp = `sizes ${a.length} vs ${b.length}`;
    else {
      let diff = 0, worst = 0;
      for (let i = 0; i < a.length; i++) if (a[i] !== b[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) { diff++; worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(Math.abs(a[i]), 1e-30)); }
      cmp = `vs ${r}: ${diff}/${a.length} differ, worst rel ${worst.toExponential(2)}`;
    }
  }
  const head = outputs.get(name).map((d) => Array.from(d.slice(0, 2)).map((v) => v.toPrecision(6)).join(',')).join(' | ');
  console.log(`${name.padEnd(12)} first ${times[0].toFixed(2)} ms, steady min ${Math.min(...steady).toFixed(3)} ms  [${head}]  ${cmp}`);
  await session.release();
}
