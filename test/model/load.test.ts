import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { expandConfig } from '../../src/model/architectures/index.js';
import { loadModel } from '../../src/model/load.js';
import { memoryModelHost } from '../../src/model/model-host.js';
import { treeToModuleJson } from '../../src/model/module-tree-json.js';
import { classOf, treeSize, type ModuleTree } from '../../src/model/module-tree.js';
import { FIXTURES } from './fixtures.js';

const CHECKPOINTS = `${FIXTURES}trees/checkpoints/`;

function codes(r: { diagnostics: readonly { code: string }[] }): string[] {
  return r.diagnostics.map((d) => d.code);
}

function modules(tree: ModuleTree): [string, string, readonly string[]][] {
  return tree.names.map((n, i) => [n, classOf(tree, i).name, classOf(tree, i).mro]);
}

describe('loadModel: checkpoints written by transformers save_pretrained', () => {
  const cases: [string, string | undefined][] = [
    ['llama', undefined],
    ['mixtral', 'per-expert'],
    ['qwen3_moe', 'per-expert'],
    ['granitemoe', 'fused'],
    ['phimoe', 'per-expert'],
    ['gpt_oss', 'fused'],
    ['glm4_moe_lite', 'per-expert'],
  ];
  for (const [type, storage] of cases) {
    it(`${type}: names and shapes agree, experts ${storage ?? 'absent'}`, () => {
      const r = loadModel(`${CHECKPOINTS}${type}`);
      expect(r.diagnostics).toEqual([]);
      expect(r.value!.source.kind).toBe('folder');
      expect(r.value!.checkpoint!.expertStorage).toBe(storage);
      expect(r.value!.checkpoint!.files).toEqual(['model.safetensors']);
    });
  }
});

/** The fixture checkpoint of `type` with its header's tensors (name → shape) edited, in memory. */
function editedFolder(type: string, edit: (tensors: Record<string, number[]>) => void, extra: Record<string, string> = {}) {
  const config = readFileSync(`${CHECKPOINTS}${type}/config.json`, 'utf8');
  const bytes = readFileSync(`${CHECKPOINTS}${type}/model.safetensors`);
  const header = JSON.parse(bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0))).toString('utf8')) as Record<string, { shape: number[] }>;
  const tensors: Record<string, number[]> = {};
  for (const [k, v] of Object.entries(header)) if (k !== '__metadata__') tensors[k] = v.shape;
  edit(tensors);
  const json = Object.fromEntries(Object.entries(tensors).map(([k, shape]) => [k, { dtype: 'BF16', shape, data_offsets: [0, 0] }]));
  return memoryModelHost({ 'm/config.json': config, ...extra }, { 'm/model.safetensors': JSON.stringify(json) });
}

describe('loadModel: checkpoint cross-check diagnostics', () => {
  it('reports a shape that disagrees with config.json', () => {
    const host = editedFolder('mixtral', (t) => (t['model.layers.0.self_attn.q_proj.weight'] = [8, 16]));
    const r = loadModel('m', host);
    expect(codes(r)).toEqual(['checkpoint-shape-mismatch']);
    expect(r.diagnostics[0]!.message).toContain('"model.layers.0.self_attn.q_proj.weight" is [8, 16] in the checkpoint but [16, 16] in the model');
  });
  it('reports missing and unexpected tensors', () => {
    const host = editedFolder('mixtral', (t) => {
      delete t['model.norm.weight'];
      t['model.layers.0.mlp.extra.weight'] = [4];
    });
    const r = loadModel('m', host);
    expect(codes(r)).toEqual(['checkpoint-missing-tensor', 'checkpoint-unexpected-tensor']);
    expect(r.diagnostics[0]!.message).toContain('"model.norm.weight"');
    expect(r.diagnostics[1]!.message).toContain('"model.layers.0.mlp.extra.weight"');
  });
  it('reports per-expert tensors for fewer experts than the config declares', () => {
    const host = editedFolder('mixtral', (t) => {
      for (const w of ['w1', 'w2', 'w3']) delete t[`model.layers.1.block_sparse_moe.experts.3.${w}.weight`];
    });
    const r = loadModel('m', host);
    expect(codes(r)).toEqual(['checkpoint-shape-mismatch']);
    expect(r.diagnostics[0]!.message).toContain('"model.layers.1.mlp.experts" stores 3 experts in the checkpoint but the config says 4');
  });
  it('ignores quantization side tensors and extra MTP layers, and says so', () => {
    const host = editedFolder('mixtral', (t) => {
      t['model.layers.0.self_attn.q_proj.weight_scale_inv'] = [1, 1];
      t['model.layers.2.self_attn.q_proj.weight'] = [16, 16];
    });
    const r = loadModel('m', host);
    expect(r.diagnostics).toEqual([]);
    expect(r.value!.checkpoint!.summary).toBe(
      '1 file, 43 tensors, experts stored per expert (transformers fuses them on load), 1 quantization side tensors, 1 tensors of extra layers beyond num_hidden_layers (not loaded by transformers)',
    );
  });
  it('accepts quantized checkpoints: MXFP4 blocks and scales, compressed-tensors packed weights', () => {
    const gptOss = editedFolder('gpt_oss', (t) => {
      for (const [name, shape] of Object.entries(t)) {
        if (!name.endsWith('experts.gate_up_proj') && !name.endsWith('experts.down_proj')) continue;
        delete t[name];
        t[`${name}_blocks`] = [...shape, 2];
        t[`${name}_scales`] = shape;
      }
    });
    const r = loadModel('m', gptOss);
    expect(r.diagnostics).toEqual([]);
    expect(r.value!.checkpoint!.expertStorage).toBe('fused');
    const qwen = editedFolder('qwen3_moe', (t) => {
      for (const [name, shape] of Object.entries(t)) {
        if (!/experts\.\d+\.\w+\.weight$/.test(name)) continue;
        delete t[name];
        t[`${name}_packed`] = [shape[0]!, shape[1]! / 2];
        t[`${name}_scale`] = [shape[0]!, 1];
        t[`${name}_global_scale`] = [1];
      }
    });
    const q = loadModel('m', qwen);
    expect(q.diagnostics).toEqual([]);
    expect(q.value!.checkpoint!.expertStorage).toBe('per-expert');
    expect(q.value!.checkpoint!.auxiliaryTensors).toBe(2 * 2 * 4 * 3);
  });
  it('checks names from the index when shards are absent', () => {
    const config = readFileSync(`${CHECKPOINTS}llama/config.json`, 'utf8');
    const tree = expandConfig(JSON.parse(config) as Record<string, unknown>).value!.tree;
    const names = tree.names.flatMap((n, i) => tree.params.slice(tree.paramStart[i]!, tree.paramStart[i + 1]!).map((p) => `${n}.${p.name}`));
    const weightMap = Object.fromEntries(names.slice(1).map((n) => [n, 'model-00001-of-00001.safetensors']));
    const host = memoryModelHost({ 'm/config.json': config, 'm/model.safetensors.index.json': JSON.stringify({ weight_map: weightMap }) });
    const r = loadModel('m', host);
    expect(codes(r)).toEqual(['checkpoint-shard-missing', 'checkpoint-missing-tensor']);
    expect(r.diagnostics[1]!.message).toContain(`"${names[0]}"`);
  });
  it('rejects an unreadable safetensors header', () => {
    const host = memoryModelHost({ 'm/config.json': readFileSync(`${CHECKPOINTS}llama/config.json`, 'utf8') }, { 'm/model.safetensors': '{"a": 1' });
    expect(codes(loadModel('m', host))).toEqual(['safetensors-invalid-header']);
  });
  it('rejects a malformed index', () => {
    const host = memoryModelHost({ 'm/config.json': readFileSync(`${CHECKPOINTS}llama/config.json`, 'utf8'), 'm/model.safetensors.index.json': '{"weight_map": 3}' });
    expect(codes(loadModel('m', host))).toEqual(['checkpoint-index-invalid']);
  });
});

describe('loadModel: inputs', () => {
  it('reads a bare config.json', () => {
    const r = loadModel(`${CHECKPOINTS}qwen3_moe/config.json`);
    expect(r.diagnostics).toEqual([]);
    expect(r.value!.source.kind).toBe('config');
    expect(r.value!.checkpoint).toBeUndefined();
    expect(r.value!.moe.blocks).toHaveLength(2);
  });
  it('resolves bundled model ids case-insensitively', () => {
    const r = loadModel('ZAI-ORG/glm-4.7-flash');
    expect(r.diagnostics).toEqual([]);
    expect(r.value!.source.kind).toBe('hub');
    expect(r.value!.tree.origin.description).toBe('bundled config of zai-org/GLM-4.7-Flash (glm4_moe_lite)');
    const moe = r.value!.moe.blocks;
    expect(moe).toHaveLength(46);
    const b = moe[0]!;
    const tree = r.value!.tree;
    expect([tree.names[b.block], tree.names[b.experts], tree.names[b.router], tree.names[b.sharedExperts]]).toEqual([
      'model.layers.1.mlp',
      'model.layers.1.mlp.experts',
      'model.layers.1.mlp.gate',
      'model.layers.1.mlp.shared_experts',
    ]);
    expect(b).toMatchObject({ numExperts: 64, topK: 4, hiddenSize: 2048, intermediateSize: 1536, sharedExpertGate: -1, decorated: true, dtype: 'bfloat16' });
    expect(b.layout).toEqual({ isConcatenated: true, isTransposed: false, hasBias: false, hasGate: true });
    expect(b.expertLinears).toEqual([
      { name: 'up_proj', shape: [1536, 2048], bias: false },
      { name: 'gate_proj', shape: [1536, 2048], bias: false },
      { name: 'down_proj', shape: [2048, 1536], bias: false },
    ]);
  });
  it('expands Kimi-K2 (kimi_k2) as DeepSeek-V3 with 60 MoE blocks of 384 experts', () => {
    const r = loadModel('moonshotai/Kimi-K2-Instruct');
    expect(r.value!.tree.modelType).toBe('deepseek_v3');
    expect(r.value!.moe.blocks).toHaveLength(60);
    expect(r.value!.moe.blocks.every((b) => b.numExperts === 384)).toBe(true);
  });
  it('lists the bundled ids for an unknown id, with a suggestion', () => {
    const r = loadModel('zai-org/GLM-4.7-Flsh');
    expect(codes(r)).toEqual(['unknown-model-id']);
    expect(r.diagnostics[0]!.message).toContain('Did you mean "zai-org/GLM-4.7-Flash"?');
    expect(r.diagnostics[0]!.notes![0]!.message).toContain('moonshotai/Kimi-K2-Instruct');
  });
  it('never suggests a bundled model of another size or version', () => {
    expect(loadModel('meta-llama/Llama-3.1-70B').diagnostics[0]!.message).not.toContain('Did you mean');
    expect(loadModel('Qwen/Qwen3-30B-A3X').diagnostics[0]!.message).toContain('Did you mean "Qwen/Qwen3-30B-A3B"?');
  });
  it('reports a path that does not exist', () => {
    expect(codes(loadModel('/nonexistent/model/dir/x'))).toEqual(['model-not-found']);
    expect(loadModel('llama-3.1-8B').diagnostics[0]!.message).toMatch(/ Did you mean "meta-llama\/Llama-3\.1-8B"\?$/);
  });
  it('reports a folder without config.json, and invalid JSON', () => {
    expect(codes(loadModel('d', memoryModelHost({ 'd/README.md': 'x' })))).toEqual(['model-config-missing']);
    expect(codes(loadModel('c.json', memoryModelHost({ 'c.json': '{"model_type": ' })))).toEqual(['model-config-invalid']);
  });
  it('says a weights file passed as --model is binary instead of quoting its bytes', () => {
    const r = loadModel('test/fixtures/trees/checkpoints/llama/model.safetensors');
    expect(r.diagnostics.map((d) => d.message)).toEqual([
      '"test/fixtures/trees/checkpoints/llama/model.safetensors" is a binary file, not a config.json or module-tree JSON; pass the model folder or its config.json.',
    ]);
  });
  it('points an unknown model_type to the module-tree JSON route', () => {
    const r = loadModel('c.json', memoryModelHost({ 'c.json': '{"model_type": "mixtrall"}' }));
    expect(codes(r)).toEqual(['unknown-model-type']);
    expect(r.diagnostics[0]!.message).toContain('Did you mean "mixtral"?');
    expect(r.diagnostics[0]!.message).toContain('docs/models.md');
  });
  it('reports config fields a descriptor needs but cannot find', () => {
    const r = loadModel('c.json', memoryModelHost({ 'c.json': '{"model_type": "llama", "hidden_size": "big"}' }));
    expect(codes(r)).toEqual(['config-invalid-field']);
    expect(r.diagnostics[0]!.message).toContain('"hidden_size" must be a non-negative integer');
  });
  it('builds the text model of a multimodal llama4 config', () => {
    const text = { hidden_size: 64, intermediate_size: 32, intermediate_size_mlp: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16, vocab_size: 100, num_local_experts: 4 };
    const r = loadModel('c.json', memoryModelHost({ 'c.json': JSON.stringify({ model_type: 'llama4', torch_dtype: 'bfloat16', text_config: text }) }));
    expect(r.diagnostics).toEqual([]);
    expect(classOf(r.value!.tree, 0).name).toBe('Llama4ForCausalLM');
    expect(r.value!.tree.params[0]!.dtype).toBe('bfloat16');
    expect(r.value!.moe.blocks.map((b) => b.decorated)).toEqual([false, false]);
  });
});

describe('loadModel: module-tree JSON', () => {
  for (const type of ['mixtral', 'qwen3_moe']) {
    it(`reads the documented Python dump of ${type} as the descriptor builds it`, () => {
      const dir = `${FIXTURES}trees/module-json/`;
      const r = loadModel(`${dir}${type}.modules.json`);
      expect(r.diagnostics).toEqual([]);
      expect(r.value!.source.kind).toBe('module-tree-json');
      expect(r.value!.tree.modelType).toBe(type);
      const expanded = expandConfig(JSON.parse(readFileSync(`${dir}${type}.config.json`, 'utf8')) as Record<string, unknown>).value!.tree;
      expect(modules(r.value!.tree)).toEqual(modules(expanded));
      expect(r.value!.tree.params).toEqual(expanded.params);
    });
  }
  it('reads back what treeToModuleJson writes, bare or wrapped', () => {
    const tree = loadModel('meta-llama/Llama-3.1-8B').value!.tree;
    const json = JSON.stringify(treeToModuleJson(tree));
    for (const text of [json, `{"model_type": "llama", "modules": ${json}}`]) {
      const r = loadModel('t.json', memoryModelHost({ 't.json': text }));
      expect(r.diagnostics).toEqual([]);
      expect(treeSize(r.value!.tree)).toBe(treeSize(tree));
      expect(modules(r.value!.tree)).toEqual(modules(tree));
      expect(r.value!.tree.params).toEqual(tree.params);
    }
  });
  it('reads the oracle dump format', () => {
    const r = loadModel(`${FIXTURES}trees/llama/default.tree.json.gz`.replace('.gz', ''), memoryModelHost({}));
    expect(codes(r)).toEqual(['model-not-found']);
    const text = JSON.stringify({ classes: { X: ['X', 'Module'], Linear: ['Linear', 'Module'] }, modules: [['', 'X'], ['a', 'Linear']], params: [['a.weight', [2, 3], 'float32']] });
    const ok = loadModel('t.json', memoryModelHost({ 't.json': text }));
    expect(ok.diagnostics).toEqual([]);
    expect(ok.value!.tree.params).toEqual([{ name: 'weight', shape: [2, 3], dtype: 'float32' }]);
  });
  it.each([
    ['[{"name": "", "class": 3}]', 'at /0/class must be string'],
    ['{"modules": []}', 'at /modules must NOT have fewer than 1 items'],
    ['[{"name": "a", "class": "X"}]', 'must start with the root module'],
    ['[{"name": "", "class": "X"}, {"name": "a.b", "class": "X"}]', 'lists "a.b" before its parent "a"'],
    ['[{"name": "", "class": "X"}, {"name": "", "class": "X"}]', 'lists "" twice'],
  ])('rejects %s', (text, message) => {
    const r = loadModel('t.json', memoryModelHost({ 't.json': text }));
    expect(codes(r)).toEqual(['module-tree-invalid']);
    expect(r.diagnostics[0]!.message).toContain(message);
  });
});
