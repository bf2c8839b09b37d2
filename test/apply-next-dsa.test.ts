import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { main } from '../src/cli/main.js';
import { roundTripOffsetNorm } from '../src/execute/offset-norms.js';
import { DATAFREE, parseSafetensors, readRefTensors, unpackModel } from './execute/fixtures.js';
import { memoryIo } from './memory-io.js';

describe('quantc apply on qwen3_next and glm_moe_dsa', () => {
  // The planner's module set and ignore list (DeltaNet and its gated norm listed as llm-compressor lists them,
  // the DSA indexer's Linears quantized), the offset norms written back as llm-compressor writes them.
  for (const model of ['qwen3_next', 'glm_moe_dsa']) {
    test(`${model}: llm-compressor's own W4A16 recipe.yaml gives its checkpoint, tensor by tensor`, async () => {
      const modelDir = await unpackModel(join(DATAFREE, model, 'base'));
      const cwd = await mkdtemp(join(tmpdir(), 'quantc-cli-'));
      const io = memoryIo(cwd);
      const refDir = join(DATAFREE, model, 'W4A16');
      expect(await main(['apply', join(refDir, 'recipe.yaml'), '--model', modelDir, '--out', 'out'], io), io.err.join('')).toBe(0);
      const got = parseSafetensors(new Uint8Array(await readFile(join(cwd, 'out', 'model.safetensors'))));
      const ref = await readRefTensors(refDir);
      expect([...got.keys()].sort()).toEqual([...ref.keys()].sort());
      for (const [name, r] of ref) expect(Buffer.compare(Buffer.from(got.get(name)!.bytes), Buffer.from(r.bytes)), name).toBe(0);
      expect(await readFile(join(cwd, 'out', 'config.json'), 'utf8')).toBe(await readFile(join(refDir, 'config.json'), 'utf8'));
    });
  }

  test('offset norms: bf16(bf16(1 + w) - 1) moves small weights, keeps representable ones', async () => {
    const base = await readRefTensors(join(DATAFREE, 'qwen3_next', 'base'));
    const ref = await readRefTensors(join(DATAFREE, 'qwen3_next', 'W4A16'));
    let moved = 0;
    for (const name of ['model.norm.weight', 'model.layers.1.self_attn.q_norm.weight', 'model.layers.0.input_layernorm.weight']) {
      const b = base.get(name)!;
      expect(Buffer.compare(Buffer.from(roundTripOffsetNorm(b.bytes, 'BF16')), Buffer.from(ref.get(name)!.bytes)), name).toBe(0);
      if (Buffer.compare(Buffer.from(b.bytes), Buffer.from(ref.get(name)!.bytes)) !== 0) moved++;
    }
    expect(moved).toBe(3);
    // The DeltaNet's gated norm is no offset norm: written unchanged.
    const gated = 'model.layers.0.linear_attn.norm.weight';
    expect(Buffer.compare(Buffer.from(base.get(gated)!.bytes), Buffer.from(ref.get(gated)!.bytes))).toBe(0);
    // Exact round trips: 0 → 0, 0.5 → 0.5; 2⁻¹⁰ is lost to bf16(1 + w).
    const values = new Uint16Array([0x0000, 0x3f00, 0x3a80]);
    expect(Array.from(new Uint16Array(roundTripOffsetNorm(new Uint8Array(values.buffer), 'BF16').buffer))).toEqual([0x0000, 0x3f00, 0x0000]);
  });
});
