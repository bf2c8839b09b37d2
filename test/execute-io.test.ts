import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { f16Bytes, roundBf16, roundF16, toFloat32, fp8E4m3Bytes } from '../src/execute/dtypes.js';
import { dumpPyJson, parsePyJson } from '../src/execute/python-json.js';
import { roundFp8E4m3 } from '../src/execute/rtn/qparams.js';
import { quantizeGraph } from '../src/execute/rtn/graphs.js';
import { GraphRuntime } from '../src/execute/runtime.js';
import { GraphBuilder, OnnxType } from '../src/execute/onnx/graph-builder.js';
import { CheckpointError, openCheckpoint, readSafetensorsHeader, readTensorBytes, readTensorBytesSync, readTensorChunks } from '../src/execute/safetensors-reader.js';
import { DATAFREE } from './execute/fixtures.js';
import { encodeHeader, layoutShards, SafetensorsFileWriter, shardIndexJson, type OutputTensorSpec } from '../src/execute/safetensors-writer.js';
import { ShardedWriter, WriteWindow } from '../src/execute/sharded-writer.js';

describe('safetensors I/O', () => {
  const specs: OutputTensorSpec[] = [
    { name: 'a.weight', dtype: 'BF16', shape: [2, 3], byteLength: 12 },
    { name: 'b.weight_packed', dtype: 'I32', shape: [1, 2], byteLength: 8 },
    { name: 'c', dtype: 'F8_E4M3', shape: [5], byteLength: 5 },
  ];

  test('header is 8-byte aligned and offsets are contiguous', () => {
    const h = encodeHeader(specs, { format: 'pt' });
    const len = Number(Buffer.from(h).readBigUInt64LE(0));
    expect(len % 8).toBe(0);
    const json = JSON.parse(Buffer.from(h.subarray(8)).toString('utf8')) as Record<string, { data_offsets: number[] }>;
    expect(json['a.weight'].data_offsets).toEqual([0, 12]);
    expect(json['b.weight_packed'].data_offsets).toEqual([12, 20]);
    expect(json.c.data_offsets).toEqual([20, 25]);
  });

  test('streamed writes read back by offset and in chunks; order and sizes are enforced', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quantc-st-'));
    const file = join(dir, 'model.safetensors');
    const w = await SafetensorsFileWriter.create(file, specs);
    await expect(w.write('b.weight_packed', new Uint8Array(8))).rejects.toThrow(/expected a.weight/);
    await w.writeChunks('a.weight', 12, [Uint8Array.of(1, 2, 3, 4, 5), Uint8Array.of(6, 7, 8, 9, 10, 11, 12)]);
    await w.write('b.weight_packed', Uint8Array.from({ length: 8 }, (_, i) => 20 + i));
    await expect(w.write('c', new Uint8Array(4))).rejects.toThrow(/5 bytes/);
    await w.write('c', Uint8Array.of(9, 8, 7, 6, 5));
    await w.close();
    const entries = await readSafetensorsHeader(file);
    expect(entries.map((e) => [e.name, e.dtype, e.shape])).toEqual(specs.map((s) => [s.name, s.dtype, s.shape]));
    expect([...(await readTensorBytes(entries[1]))]).toEqual([20, 21, 22, 23, 24, 25, 26, 27]);
    const chunks: number[][] = [];
    for await (const c of readTensorChunks(entries[0], 5)) chunks.push([...c]);
    expect(chunks).toEqual([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12]]);
  });

  test('overlapping writes across shards land at their places; a slow chunk stream holds up only its own tensor', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quantc-st-'));
    const layout = layoutShards(specs, 16);
    const w = new ShardedWriter(dir, layout);
    let release = (): void => undefined;
    const gate = new Promise<void>((r) => (release = r));
    async function* slow(): AsyncGenerator<Uint8Array> {
      yield Uint8Array.of(1, 2, 3, 4, 5, 6);
      await gate;
      yield Uint8Array.of(7, 8, 9, 10, 11, 12);
    }
    const window = new WriteWindow(1 << 20);
    await window.add(w.writeChunks('a.weight', 12, slow()), 12);
    await window.add(w.write('b.weight_packed', Uint8Array.from({ length: 8 }, (_, i) => 20 + i)), 8);
    await window.add(w.write('c', Uint8Array.of(9, 8, 7, 6, 5)), 5);
    release();
    await window.drain();
    await w.close();
    const [first, second] = layout.shards.map((s) => join(dir, s.file));
    const a = await readSafetensorsHeader(first!);
    expect([...(await readTensorBytes(a[0]!))]).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    const b = await readSafetensorsHeader(second!);
    expect(b.map((e) => e.name)).toEqual(['b.weight_packed', 'c']);
    expect([...(await readTensorBytes(b[0]!))]).toEqual([20, 21, 22, 23, 24, 25, 26, 27]);
    expect([...(await readTensorBytes(b[1]!))]).toEqual([9, 8, 7, 6, 5]);
  });

  test('a failed write fails the window that waits for it, and close()', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quantc-st-'));
    const w = new ShardedWriter(dir, layoutShards(specs, 1e9));
    const window = new WriteWindow(0);
    // The stream gives 11 of a.weight's 12 bytes.
    await expect(window.add(w.writeChunks('a.weight', 12, [new Uint8Array(11)]), 12)).rejects.toThrow(/a\.weight got 11 of 12 bytes/);
    await expect(w.close()).rejects.toThrow(/a\.weight got 11 of 12 bytes/);
  });

  test('closing before every tensor is written fails', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quantc-st-'));
    const w = await SafetensorsFileWriter.create(join(dir, 'x.safetensors'), specs);
    await expect(w.close()).rejects.toThrow(/closed before a.weight/);
  });

  test('shards split by size and the index maps every tensor', async () => {
    const layout = layoutShards(specs, 16);
    expect(layout.shards.map((s) => [s.file, s.tensors.map((t) => t.name)])).toEqual([
      ['model-00001-of-00002.safetensors', ['a.weight']],
      ['model-00002-of-00002.safetensors', ['b.weight_packed', 'c']],
    ]);
    expect(JSON.parse(shardIndexJson(layout))).toEqual({
      metadata: { total_size: 25 },
      weight_map: { 'a.weight': 'model-00001-of-00002.safetensors', 'b.weight_packed': 'model-00002-of-00002.safetensors', c: 'model-00002-of-00002.safetensors' },
    });
    expect(layoutShards(specs, 1e9).shards.map((s) => s.file)).toEqual(['model.safetensors']);
  });

  test('a truncated file is reported with its name', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quantc-st-'));
    const file = join(dir, 'model.safetensors');
    const header = encodeHeader(specs, {});
    await writeFile(file, Buffer.concat([Buffer.from(header), Buffer.alloc(10)]));
    await expect(openCheckpoint(dir)).rejects.toThrow(/model\.safetensors: tensor a\.weight has inconsistent offsets/);
  });

  test('a range read past the end (a file cut after it was opened) is a CheckpointError, blocking or not', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quantc-st-'));
    const file = join(dir, 'model.safetensors');
    await writeFile(file, Buffer.from([1, 2, 3, 4, 5, 6]));
    expect([...readTensorBytesSync({ file, offset: 2, byteLength: 4 })]).toEqual([3, 4, 5, 6]);
    expect([...(await readTensorBytes({ file, offset: 2, byteLength: 4 }))]).toEqual([3, 4, 5, 6]);
    const past = { file, offset: 4, byteLength: 4, name: 'a.weight' };
    expect(() => readTensorBytesSync(past)).toThrow(CheckpointError);
    expect(() => readTensorBytesSync(past)).toThrow(/model\.safetensors: unexpected end of file reading a\.weight/);
    await expect(readTensorBytes(past)).rejects.toThrow(/model\.safetensors: unexpected end of file reading a\.weight/);
  });
});

describe('Python-style JSON', () => {
  test('keeps number literals and writes sorted keys, indent 2, ASCII escapes', async () => {
    const text = '{"rope_theta": 10000.0, "eps": 1e-06, "b": [], "a": {"x": [1, 2]}, "s": "é\\n", "n": null, "t": true, "o": {}}';
    expect(dumpPyJson(parsePyJson(text))).toBe(
      '{\n  "a": {\n    "x": [\n      1,\n      2\n    ]\n  },\n  "b": [],\n  "eps": 1e-06,\n  "n": null,\n  "o": {},\n  "rope_theta": 10000.0,\n  "s": "\\u00e9\\n",\n  "t": true\n}',
    );
  });

  test('reproduces a config.json transformers wrote', async () => {
    const file = join(DATAFREE, 'llama', 'base', 'config.json');
    const text = await readFile(file, 'utf8');
    expect(dumpPyJson(parsePyJson(text)) + '\n').toBe(text);
  });
});

describe('float formats', () => {
  test('bf16 rounding is round-to-nearest-even', () => {
    expect(roundBf16(1 + 2 ** -8)).toBe(1);
    expect(roundBf16(1 + 3 * 2 ** -8)).toBe(1 + 2 ** -6);
    expect(roundBf16(-(1 + 2 ** -7 + 2 ** -9))).toBe(-(1 + 2 ** -7));
    expect([...toFloat32(Uint8Array.of(0x80, 0x3f, 0x00, 0xc0), 'BF16')]).toEqual([1, -2]);
    expect([...toFloat32(Uint8Array.of(0x00, 0x3c, 0x01, 0x00), 'F16')]).toEqual([1, 2 ** -24]);
  });

  test('f16 rounding is round-to-nearest-even with subnormals and overflow', () => {
    expect(roundF16(1 + 2 ** -11)).toBe(1);
    expect(roundF16(1 + 3 * 2 ** -11)).toBe(1 + 2 ** -9);
    expect(roundF16(-(2 ** -25))).toBe(-0);
    expect(roundF16(3 * 2 ** -26)).toBe(2 ** -24);
    expect(roundF16(65504)).toBe(65504);
    expect(roundF16(65519)).toBe(65504);
    expect(roundF16(65520)).toBe(Infinity);
    expect([...f16Bytes(Float32Array.of(1, -2, 2 ** -24, 65504))]).toEqual([0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00, 0xff, 0x7b]);
  });

  test('TypeScript FP8 E4M3 rounding and encoding agree with onnxruntime\'s Cast', async () => {
    const values = new Float32Array(4000);
    for (let i = 0; i < values.length; i++) values[i] = (i % 2 ? -1 : 1) * 2 ** (((i * 7919) % 2300) / 100 - 12) * (1 + (i % 13) / 13);
    const g = new GraphBuilder();
    const x = g.input('x', OnnxType.float, ['n']);
    const clipped = g.op('Clip', [x, g.f32(-448), g.f32(448)]);
    g.output(g.op('Cast', [g.op('Cast', [clipped], { to: OnnxType.float8e4m3fn, saturate: 1 })], { to: OnnxType.float }), 'y', OnnxType.float, ['n']);
    const rt = new GraphRuntime('cpu');
    const out = await rt.run('fp8', () => g.build('fp8'), { x: { type: 'float32', data: values, dims: [values.length] } });
    await rt.dispose();
    const ort = out.y.data as Float32Array;
    expect([...values].map(roundFp8E4m3)).toEqual([...ort]);
    // Every code decodes back to its value.
    const codes = fp8E4m3Bytes(ort);
    for (let i = 0; i < codes.length; i++) {
      const c = codes[i];
      const e = (c >> 3) & 15;
      const m = c & 7;
      const v = (e === 0 ? m / 8 * 2 ** -6 : (1 + m / 8) * 2 ** (e - 7)) * (c & 0x80 ? -1 : 1);
      expect(v).toBe(ort[i] === 0 ? (Object.is(ort[i], -0) ? -0 : 0) : ort[i]);
    }
  });

  test('FP8 byte codes computed inside the graph equal the TypeScript encoding (zeros, -0, subnormals, saturation)', async () => {
    const values = Float32Array.from([0, -0, -1e-9, 1e-9, 2 ** -9, -(2 ** -7) * 1.75, 2 ** -6, 0.3, -1.0625, 447, 448, 1e6, -1e6]);
    const many = new Float32Array(4000);
    for (let i = 0; i < many.length; i++) many[i] = (i % 2 ? -1 : 1) * 2 ** (((i * 7919) % 2300) / 100 - 12);
    const all = Float32Array.from([...values, ...many]);
    const rt = new GraphRuntime('cpu');
    const graph = () => quantizeGraph({ kind: 'fp8', dtype: 'F32', rank: 3, bits: 8, pack: false, asymmetric: false, input: 'f32', fp8Codes: true });
    const out = await rt.run('fp8-codes', graph, {
      w: { type: 'float32', data: all, dims: [1, 1, all.length] },
      s: { type: 'float32', data: Float32Array.of(1), dims: [1, 1, 1] },
    });
    await rt.dispose();
    expect([...(out.q.data as Uint8Array)]).toEqual([...fp8E4m3Bytes(Float32Array.from([...all].map(roundFp8E4m3)))]);
  });
});
