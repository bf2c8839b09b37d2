import { expect, it } from 'vitest';
import { checkFusedGroups } from '../../src/match/fused-groups.js';
import { assignSchemes } from '../../src/match/match.js';
import { decoderTree, group, patterns, weightArgs } from './tiny-tree.js';

const tree = decoderTree(3);
const run = (groups: ReturnType<typeof group>[], ignore: string[]) =>
  checkFusedGroups(tree, assignSchemes(tree, groups, patterns(ignore)), groups).map((d) => `${d.severity} ${d.code}: ${d.message}`);

it('is an error when NVFP4 reaches only part of a fused group', () => {
  expect(run([group('nvfp4', ['Linear'], weightArgs('tensor_group', 16))], ['re:.*k_proj$'])).toEqual([
    'error fused-group-mixed-nvfp4: Some layers in fused group: (\'q_proj\', \'k_proj\', \'v_proj\') have no weight observer, need all fused layers to have same quantization: under model.layers.{0..2}.self_attn (3 groups; q_proj: "nvfp4", k_proj: not quantized, v_proj: "nvfp4"). NVFP4 shares one global scale across the fused layers, so quantize all of them alike or ignore all of them.',
  ]);
  expect(run([group('nvfp4', ['Linear'], weightArgs('tensor_group', 16)), group('int8', ['re:.*up_proj$'], weightArgs('channel'))], [])[0]).toContain(
    "(\\'gate_proj\\', \\'up_proj\\') have non-TENSOR_GROUP quantization".replace(/\\/g, ''),
  );
});

it('warns for other mixes, which vLLM cannot load', () => {
  expect(run([group('w4', ['Linear'], weightArgs('group', 32))], ['model.layers.1.mlp.up_proj'])).toEqual([
    'warning fused-group-mixed-schemes: The fused layers (\'gate_proj\', \'up_proj\') under model.layers.1.mlp get different quantization (gate_proj: "w4", up_proj: not quantized); vLLM runs them as one layer and refuses to load shards with different schemes.',
  ]);
});

it('is silent when fused layers are treated alike', () => {
  expect(run([group('nvfp4', ['Linear'], weightArgs('tensor_group', 16))], ['re:.*self_attn.*'])).toEqual([]);
});

it('points at the ignore entry that split the group', () => {
  const ignore = patterns(['lm_head', 're:.*k_proj$']).map((p, i) => ({ ...p, origin: { path: 'r.qr', start: 10 * i, end: 10 * i + 5 } }));
  const groups = [group('nvfp4', ['Linear'], weightArgs('tensor_group', 16))];
  const [d] = checkFusedGroups(tree, assignSchemes(tree, groups, ignore), groups, ignore);
  expect(d!.span).toEqual({ path: 'r.qr', start: 10, end: 15 });
});
