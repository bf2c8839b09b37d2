import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compileRecipe } from '../../src/compile.js';
import { resolveMoeRewrites } from '../../src/moe/resolve.js';
import { rewriteCounts } from '../../src/moe/unpack.js';
import { nodeSourceHost } from '../../src/source-host.js';
import { toyMoe } from './helpers.js';

const dir = fileURLToPath(new URL('./cases/declared-rewrite/', import.meta.url));
const tree = toyMoe({ blockClass: 'AcmeMoE', layers: 3, experts: 4, hidden: 16, intermediate: 8, layout: 'fused', router: 'gate' });

describe('a rewrite declared in a recipe', () => {
  for (const file of ['recipe.qr', 'recipe.yaml']) {
    it(`makes an unknown MoE class resolve (${file})`, async () => {
      const compiled = await compileRecipe(`${dir}${file}`, nodeSourceHost);
      expect(compiled.diagnostics).toEqual([]);
      const ir = compiled.ir!;
      expect(ir.moe.rewrites.map((r) => [r.class, r.experts, r.router, r.experts_layout])).toEqual([['AcmeMoE', 'experts', 'gate', 'fused']]);
      const { value, diagnostics } = resolveMoeRewrites(tree, ir.moe);
      expect(diagnostics).toEqual([]);
      expect(value.rewrites.map((r) => [r.module, r.source, r.rewrite])).toEqual([
        ['model.layers.0.mlp', 'declared', 'unpack-fused-experts'],
        ['model.layers.1.mlp', 'declared', 'unpack-fused-experts'],
        ['model.layers.2.mlp', 'declared', 'unpack-fused-experts'],
      ]);
      expect(rewriteCounts(value).linearAdded).toBe(36);
    });
  }

  it('without it, the same model is moe-unsupported', async () => {
    const compiled = await compileRecipe(`${dir}recipe.qr`, nodeSourceHost);
    const { diagnostics } = resolveMoeRewrites(tree, { ...compiled.ir!.moe, rewrites: [] });
    expect(diagnostics.map((d) => [d.code, d.severity])).toEqual([['moe-unsupported', 'error']]);
  });
});
