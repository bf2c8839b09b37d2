/**
 * Export to llm-compressor YAML: `<stage>_stage: <group>_modifiers:
 * ModifierName: args`, arguments materialized as `Recipe.yaml()` writes them,
 * quantc's own settings under the `quantc` key (which llm-compressor
 * ignores). Strings are quoted wherever YAML 1.1 (PyYAML) would read them as
 * something else, and no Python tags are ever written.
 */
import { Document, isScalar, visit } from 'yaml';
import type { RecipeIR } from '../ir/types.js';
import type { RecipeDocument } from '../parse/document.js';
import { QUANTC_KEY } from '../parse/from-dict.js';

/** The YAML mapping llm-compressor's `Recipe.from_dict` reads back into the same modifiers. */
export function recipeToYamlObject(ir: RecipeIR, document: RecipeDocument): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const ext: Record<string, unknown> = {};
  if (document.recipe) ext.recipe = document.recipe;
  if (document.moe) ext.moe = document.moe;
  if (Object.keys(ext).length > 0) out[QUANTC_KEY] = ext;
  for (const m of ir.modifiers) {
    const stage = (out[`${m.stage}_stage`] ??= {}) as Record<string, Record<string, unknown>>;
    const group = (stage[`${m.group}_modifiers`] ??= {});
    group[m.type] = m.args;
  }
  return out;
}

/** Renders the export as YAML text; collections holding only scalars go on one line, like PyYAML's `default_flow_style=None`. */
export function exportYaml(ir: RecipeIR, document: RecipeDocument): string {
  const doc = new Document(recipeToYamlObject(ir, document), { version: '1.1' });
  visit(doc, {
    Seq(_, node) {
      if (node.items.every((i) => isScalar(i))) node.flow = true;
    },
    Map(_, node) {
      if (node !== doc.contents && node.items.every((p) => isScalar(p.value))) node.flow = true;
    },
  });
  return doc.toString({ lineWidth: 88, indentSeq: true, flowCollectionPadding: false, singleQuote: true });
}
