import { describe, expect, it } from 'vitest';
import { TreeBuilder, classOf, paramsOf } from '../../src/model/module-tree.js';
import { detectMoeLike } from '../../src/moe/detect.js';
import { resolveMoeRewrites } from '../../src/moe/resolve.js';
import { applyRewrites, legacyReplaced, rewriteCounts, rewriteSummaries } from '../../src/moe/unpack.js';
import { decl, oracleTree, settings, toyMoe } from './helpers.js';

const fused = toyMoe({ blockClass: 'AcmeMoE', layers: 3, experts: 4, hidden: 16, intermediate: 8, layout: 'fused', router: 'gate' });
const span = { path: 'recipe.qr', start: 10, end: 20 };

describe('unknown MoE classes', () => {
  it('detects a block by its experts and router, not its class', () => {
    expect(detectMoeLike(fused).map((m) => [m.name, m.class, m.experts.count, m.experts.layout, m.router.name])).toEqual([
      ['model.layers.0.mlp', 'AcmeMoE', 4, 'fused', 'model.layers.0.mlp.gate'],
      ['model.layers.1.mlp', 'AcmeMoE', 4, 'fused', 'model.layers.1.mlp.gate'],
      ['model.layers.2.mlp', 'AcmeMoE', 4, 'fused', 'model.layers.2.mlp.gate'],
    ]);
  });

  it('finds a router by out_features when its name says nothing', () => {
    const tree = toyMoe({ blockClass: 'AcmeMoE', layers: 1, experts: 4, hidden: 16, intermediate: 8, layout: 'fused', router: 'wg' });
    expect(detectMoeLike(tree)[0]!.router).toEqual({ name: 'model.layers.0.mlp.wg', kind: 'module', class: 'Linear' });
  });

  it('is a moe-unsupported error naming the class, the count and how to declare a rewrite', () => {
    const { value, diagnostics } = resolveMoeRewrites(fused, settings());
    expect(value.rewrites).toEqual([]);
    expect(value.unsupported).toEqual([
      { class: 'AcmeMoE', modules: ['model.layers.0.mlp', 'model.layers.1.mlp', 'model.layers.2.mlp'] },
    ]);
    expect(diagnostics).toHaveLength(1);
    const d = diagnostics[0]!;
    expect(d.code).toBe('moe-unsupported');
    expect(d.severity).toBe('error');
    expect(d.message).toBe(
      'MoE-like class "AcmeMoE" (3 modules, e.g. "model.layers.0.mlp": 4 experts in "model.layers.0.mlp.experts") has no calibration rewrite: its fused experts would not be unpacked into Linear modules (a Linear target would skip them) and would see only routed tokens. Declare a rewrite for it in the recipe\'s moe settings.',
    );
    expect(d.notes!.map((n) => n.message)).toEqual([
      'In a .qr recipe: moe { rewrite AcmeMoE { experts = "experts" router = "gate" experts_layout = fused } }',
      'In YAML: quantc: { moe: { rewrites: [ { class: AcmeMoE, experts: experts, router: gate, experts_layout: fused } ] } }',
      'Fused layouts also take is_concatenated, is_transposed, has_bias and has_gate (the @use_experts_implementation arguments of the experts class).',
    ]);
  });

  it('is a warning when the recipe says on_unsupported = warning', () => {
    const { diagnostics } = resolveMoeRewrites(fused, settings({ onUnsupported: 'warning' }));
    expect(diagnostics.map((d) => [d.code, d.severity])).toEqual([['moe-unsupported', 'warning']]);
  });

  it('resolves and unpacks once the recipe declares a rewrite for the class', () => {
    const { value, diagnostics } = resolveMoeRewrites(fused, settings({ rewrites: [decl({ class: 'AcmeMoE' })] }));
    expect(diagnostics).toEqual([]);
    expect(rewriteSummaries(value)[0]).toEqual({
      module: 'model.layers.0.mlp',
      class: 'AcmeMoE',
      rewrite: 'unpack-fused-experts',
      experts: 4,
      expertsModule: 'model.layers.0.mlp.experts',
      declared: true,
    });
    expect(rewriteCounts(value)).toMatchObject({ blocks: 3, unpacked: 3, linearAdded: 36, modulesAdded: 48 });
    expect(legacyReplaced(value)).toEqual([]);
    const after = applyRewrites(fused, value);
    const from = after.names.indexOf('model.layers.0.mlp.experts');
    expect(after.names.slice(from, from + 6)).toEqual([
      'model.layers.0.mlp.experts',
      'model.layers.0.mlp.experts.0',
      'model.layers.0.mlp.experts.0.up_proj',
      'model.layers.0.mlp.experts.0.gate_proj',
      'model.layers.0.mlp.experts.0.down_proj',
      'model.layers.0.mlp.experts.1',
    ]);
    expect(after.names[from + 17]).toBe('model.layers.0.mlp.experts.act_fn');
    expect(after.names[from + 18]).toBe('model.layers.1');
    expect(classOf(after, from).name).toBe('LinearExperts2D');
    expect(paramsOf(after, from + 4)).toEqual([{ name: 'weight', shape: [16, 8], dtype: 'bfloat16' }]);
    expect(after.names.length).toBe(fused.names.length + 48);
  });

  it('honours a declared transposed layout with biases', () => {
    const b = new TreeBuilder();
    b.defineClass('Linear');
    const root = b.add('', 'AcmeForCausalLM', -1);
    const block = b.child(root, 'moe', 'AcmeMoE');
    b.param(b.child(block, 'router', 'Linear'), 'weight', [4, 16], 'bfloat16');
    const experts = b.child(block, 'experts', 'AcmeExperts');
    b.param(experts, 'gate_up_proj', [4, 16, 16], 'bfloat16');
    b.param(experts, 'gate_up_proj_bias', [4, 16], 'bfloat16');
    b.param(experts, 'down_proj', [4, 8, 16], 'bfloat16');
    b.param(experts, 'down_proj_bias', [4, 16], 'bfloat16');
    const tree = b.build(undefined, { kind: 'module-tree-json', description: 'toy' });
    const rewrite = decl({ class: 'AcmeMoE', router: 'router', is_transposed: true, has_bias: true, is_concatenated: false });
    const { value, diagnostics } = resolveMoeRewrites(tree, settings({ rewrites: [rewrite] }));
    expect(diagnostics).toEqual([]);
    const after = applyRewrites(tree, value);
    const gate = after.names.indexOf('moe.experts.3.gate_proj');
    expect(paramsOf(after, gate)).toEqual([
      { name: 'weight', shape: [8, 16], dtype: 'bfloat16' },
      { name: 'bias', shape: [8], dtype: 'bfloat16' },
    ]);
    expect(paramsOf(after, after.names.indexOf('moe.experts.3.down_proj'))[0]!.shape).toEqual([16, 8]);
  });

  it('rejects a declaration that does not fit the tree', () => {
    const wrongLayout = resolveMoeRewrites(fused, settings({ rewrites: [decl({ class: 'AcmeMoE', experts_layout: 'module_list' })] }));
    expect(wrongLayout.diagnostics.map((d) => [d.code, d.notes])).toEqual([
      ['moe-rewrite-mismatch', [{ message: 'The same holds for 2 more modules of this class.' }]],
    ]);
    const wrongAttr = resolveMoeRewrites(fused, settings({ rewrites: [decl({ class: 'AcmeMoE', experts: 'moe_experts' })] }));
    expect(wrongAttr.diagnostics[0]!.message).toBe(
      'The declared rewrite for "AcmeMoE" expects experts at "model.layers.0.mlp.moe_experts", but that module does not exist.',
    );
    const transposed = resolveMoeRewrites(fused, settings({ rewrites: [decl({ class: 'AcmeMoE', is_transposed: true })] }));
    expect(transposed.diagnostics[0]!.code).toBe('moe-rewrite-mismatch');
  });

  it('warns about a declared class that matches nothing, with a suggestion', () => {
    const { diagnostics } = resolveMoeRewrites(fused, settings({ rewrites: [{ class: 'AcmeMoe', origin: span }] }));
    expect(diagnostics.map((d) => [d.code, d.severity])).toEqual([
      ['moe-rewrite-unused', 'warning'],
      ['moe-unsupported', 'error'],
    ]);
    expect(diagnostics[0]!.message).toBe('The declared rewrite for "AcmeMoe" matches no module of this model. Did you mean "AcmeMoE"?');
    expect(diagnostics[0]!.span).toEqual(span);
  });

  it('warns about a class declared twice', () => {
    const { diagnostics } = resolveMoeRewrites(fused, settings({ rewrites: [decl({ class: 'AcmeMoE' }), { class: 'AcmeMoE', origin: span }] }));
    expect(diagnostics.map((d) => [d.code, d.span])).toEqual([['moe-rewrite-duplicate', span]]);
  });
});

describe('experts that are already Linear MLPs', () => {
  const listed = toyMoe({ blockClass: 'AcmeMoE', layers: 2, experts: 4, hidden: 16, intermediate: 8, layout: 'module_list', router: 'gate' });

  it('route all tokens without unpacking, and say so', () => {
    const { value, diagnostics } = resolveMoeRewrites(listed, settings());
    expect(value.unsupported).toEqual([]);
    expect(value.rewrites.map((r) => [r.module, r.rewrite, r.source, r.experts.count])).toEqual([
      ['model.layers.0.mlp', 'route-all-tokens', 'generic', 4],
      ['model.layers.1.mlp', 'route-all-tokens', 'generic', 4],
    ]);
    expect(diagnostics.map((d) => [d.code, d.severity, d.message])).toEqual([
      [
        'moe-route-all-tokens',
        'info',
        '2 modules of class "AcmeMoE" hold their experts as Linear MLPs: nothing is unpacked, and quantc routes every calibration token through every expert while the block output stays the routed one.',
      ],
    ]);
    expect(rewriteCounts(value)).toMatchObject({ blocks: 2, unpacked: 0, routeAll: 2, linearAdded: 0 });
    expect(applyRewrites(listed, value)).toBe(listed);
  });

  it('a built-in class already linearized is re-routed, not unpacked again', () => {
    const glm = oracleTree('zai-org__GLM-4.7-Flash');
    const once = applyRewrites(glm, resolveMoeRewrites(glm, settings()).value);
    const { value, diagnostics } = resolveMoeRewrites(once, settings());
    expect(diagnostics).toEqual([]);
    expect(value.rewrites).toHaveLength(46);
    expect(value.rewrites.every((r) => r.rewrite === 'route-all-tokens' && r.source === 'builtin' && r.experts.count === 64)).toBe(true);
  });
});

describe('recipe settings', () => {
  const glm = oracleTree('zai-org__GLM-4.7-Flash');

  it('calibrate_all_experts = false warns that rare experts may see no tokens', () => {
    const { diagnostics } = resolveMoeRewrites(glm, settings({ calibrateAllExperts: false, origin: span }));
    expect(diagnostics.map((d) => [d.code, d.severity, d.span])).toEqual([['moe-partial-calibration', 'warning', span]]);
    expect(diagnostics[0]!.message).toContain('46 MoE blocks');
  });

  it('a declared rewrite overrides the built-in one and says so', () => {
    const { value, diagnostics } = resolveMoeRewrites(glm, settings({ rewrites: [{ class: 'Glm4MoeLiteMoE', origin: span }] }));
    expect(diagnostics.map((d) => [d.code, d.severity, d.span])).toEqual([['moe-rewrite-overrides-builtin', 'info', span]]);
    expect(value.rewrites.every((r) => r.source === 'declared')).toBe(true);
    expect(rewriteCounts(value).linearAdded).toBe(8832);
  });
});

describe('built-in classes that do not fit', () => {
  it('a block without usable experts is moe-layout-mismatch', () => {
    const b = new TreeBuilder();
    const root = b.add('', 'Glm4MoeLiteForCausalLM', -1);
    const block = b.child(root, 'mlp', 'Glm4MoeLiteMoE');
    b.param(b.child(block, 'experts', 'Glm4MoeLiteExperts'), 'down_proj', [4, 16, 8], 'bfloat16');
    b.param(b.child(block, 'gate', 'Glm4MoeLiteTopkRouter'), 'weight', [4, 16], 'bfloat16');
    const { value, diagnostics } = resolveMoeRewrites(b.build(undefined, { kind: 'module-tree-json', description: 'toy' }), settings());
    expect(value.rewrites).toEqual([]);
    expect(diagnostics.map((d) => [d.code, d.severity, d.message])).toEqual([
      [
        'moe-layout-mismatch',
        'error',
        'Module "mlp" of class "Glm4MoeLiteMoE" has no experts container "experts" with fused 3-D parameters or Linear expert MLPs, so its calibration rewrite cannot be applied.',
      ],
    ]);
  });

  it('fused parameters of the wrong shape are moe-layout-mismatch', () => {
    const b = new TreeBuilder();
    const root = b.add('', 'MixtralForCausalLM', -1);
    const block = b.child(root, 'mlp', 'MixtralSparseMoeBlock');
    b.param(b.child(block, 'gate', 'MixtralTopKRouter'), 'weight', [4, 16], 'bfloat16');
    const experts = b.child(block, 'experts', 'MixtralExperts');
    b.param(experts, 'gate_up_proj', [4, 16, 16], 'bfloat16');
    b.param(experts, 'down_proj', [4, 8, 16], 'bfloat16');
    const { diagnostics } = resolveMoeRewrites(b.build(undefined, { kind: 'module-tree-json', description: 'toy' }), settings());
    expect(diagnostics.map((d) => d.message)).toEqual([
      'The fused experts "mlp.experts" of class "MixtralExperts" do not have the parameters quantc\'s rewrite for "MixtralSparseMoeBlock" expects (gate_up_proj and down_proj stored [E, out, in]), so they cannot be unpacked.',
    ]);
  });
});

describe('declared attributes', () => {
  it('a declared router that does not exist is moe-rewrite-mismatch, with a suggestion', () => {
    const { diagnostics } = resolveMoeRewrites(fused, settings({ rewrites: [decl({ class: 'AcmeMoE', router: 'gates' })] }));
    expect(diagnostics[0]!.message).toBe(
      'The declared rewrite for "AcmeMoE" names "gates", but "model.layers.0.mlp" has no such submodule. Did you mean "gate"?',
    );
  });
});

describe('fused experts classes transformers knows', () => {
  const block = (blockClass: string, expertsClass: string, params: [string, number[]][]) => {
    const b = new TreeBuilder();
    b.defineClass('Linear');
    const root = b.add('', 'AnyForCausalLM', -1);
    const mlp = b.child(root, 'mlp', blockClass);
    b.param(b.child(mlp, 'gate', 'AnyRouter'), 'weight', [4, 16], 'bfloat16');
    const experts = b.child(mlp, 'experts', expertsClass);
    for (const [name, shape] of params) b.param(experts, name, shape, 'bfloat16');
    b.child(experts, 'act_fn', 'ReLUSquaredActivation');
    return b.build(undefined, { kind: 'module-tree-json', description: 'toy' });
  };

  it('resolve by experts class when the block class is not in the catalog', () => {
    const tree = block('Qwen3_5MoeSparseMoeBlock', 'Qwen3_5MoeExperts', [
      ['gate_up_proj', [4, 16, 16]],
      ['down_proj', [4, 16, 8]],
    ]);
    const { value, diagnostics } = resolveMoeRewrites(tree, settings());
    expect(diagnostics).toEqual([]);
    expect(value.rewrites.map((r) => [r.class, r.source, r.rewrite, r.linearExpertsClass, r.entry])).toEqual([
      ['Qwen3_5MoeSparseMoeBlock', 'builtin', 'unpack-fused-experts', 'LinearExperts2D', undefined],
    ]);
    expect(legacyReplaced(value)).toEqual([]);
  });

  it('unpack experts without a gate into ExpertMLPWithoutGate (NemotronH)', () => {
    const tree = block('NemotronHMoE', 'NemotronHExperts', [
      ['up_proj', [4, 8, 16]],
      ['down_proj', [4, 16, 8]],
    ]);
    const { value, diagnostics } = resolveMoeRewrites(tree, settings());
    expect(diagnostics).toEqual([]);
    const after = applyRewrites(tree, value);
    expect(after.names.map((n, i) => `${n}:${classOf(after, i).name}`).slice(3, 10)).toEqual([
      'mlp.experts:LinearExperts2D',
      'mlp.experts.0:ExpertMLPWithoutGate',
      'mlp.experts.0.up_proj:Linear',
      'mlp.experts.0.down_proj:Linear',
      'mlp.experts.1:ExpertMLPWithoutGate',
      'mlp.experts.1.up_proj:Linear',
      'mlp.experts.1.down_proj:Linear',
    ]);
    expect(after.names.at(-1)).toBe('mlp.experts.act_fn');
    expect(paramsOf(after, 5)).toEqual([{ name: 'weight', shape: [8, 16], dtype: 'bfloat16' }]);
    expect(rewriteCounts(value)).toMatchObject({ linearAdded: 8, modulesAdded: 12 });
  });
});
