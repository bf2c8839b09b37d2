/**
 * Export to llm-compressor YAML: `<stage>_stage: <group>_modifiers:
 * ModifierName: args`, arguments materialized as `Recipe.yaml()` writes them,
 * quantc's own settings under the `quantc` key (which llm-compressor
 * ignores). Strings are quoted wherever YAML 1.1 (PyYAML) would read them as
 * something else, and no Python tags are ever written.
 */
import { Document, isScalar, visit } from 'yaml';
import { warning, type Diagnostic, type Result } from '../diagnostics.js';
import type { ModifierIR, RecipeIR } from '../ir/types.js';
import type { RecipeDocument } from '../parse/document.js';
import { QUANTC_KEY } from '../parse/from-dict.js';

/** A key not yet used in `taken`: `name`, else `name_2`, `name_3`, … */
function freshName(name: string, taken: Set<string>): string {
  let candidate = name;
  for (let i = 2; taken.has(candidate); i++) candidate = `${name}_${i}`;
  taken.add(candidate);
  return candidate;
}

/**
 * The YAML mapping llm-compressor's `Recipe.from_dict` reads back into the
 * same modifiers in the same order. A YAML mapping cannot hold one modifier
 * name twice, nor a stage twice, so a repeated modifier in a group, or a stage
 * that reappears later, gets a numbered name (stage and group names are only
 * labels to llm-compressor); each rename is reported.
 */
export function recipeToYamlObject(ir: RecipeIR, document: RecipeDocument): Result<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const diagnostics: Diagnostic[] = [];
  const ext: Record<string, unknown> = {};
  if (document.recipe) ext.recipe = document.recipe;
  if (document.moe) ext.moe = document.moe;
  if (Object.keys(ext).length > 0) out[QUANTC_KEY] = ext;
  const stageNames = new Set<string>();
  let stage: { name: string; key: string; groups: Record<string, Record<string, unknown>>; groupNames: Set<string> } | undefined;
  let group: { name: string; key: string; modifiers: Record<string, unknown> } | undefined;
  const rename = (m: ModifierIR, what: string, from: string, to: string): void => {
    diagnostics.push(warning('export-renamed', `The ${what} "${from}" is written as "${to}" so that "${m.type}" keeps its place in llm-compressor YAML.`, m.origin));
  };
  for (const m of ir.modifiers) {
    if (!stage || stage.name !== m.stage) {
      const key = freshName(m.stage, stageNames);
      if (key !== m.stage) rename(m, 'stage', m.stage, key);
      stage = { name: m.stage, key, groups: {}, groupNames: new Set() };
      out[`${key}_stage`] = stage.groups;
      group = undefined;
    }
    if (!group || group.name !== m.group || Object.hasOwn(group.modifiers, m.type)) {
      const key = freshName(m.group, stage.groupNames);
      if (key !== m.group) rename(m, 'modifier group', m.group, key);
      group = { name: m.group, key, modifiers: {} };
      stage.groups[`${key}_modifiers`] = group.modifiers;
    }
    group.modifiers[m.type] = m.args;
  }
  return { value: out, diagnostics };
}

/** Renders the export as YAML text; collections holding only scalars go on one line, like PyYAML's `default_flow_style=None`. */
export function exportYaml(ir: RecipeIR, document: RecipeDocument): Result<string> {
  const { value, diagnostics } = recipeToYamlObject(ir, document);
  const doc = new Document(value, { version: '1.1' });
  visit(doc, {
    Seq(_, node) {
      if (node.items.every((i) => isScalar(i))) node.flow = true;
    },
    Map(_, node) {
      if (node !== doc.contents && node.items.every((p) => isScalar(p.value))) node.flow = true;
    },
  });
  return { value: doc.toString({ lineWidth: 88, indentSeq: true, flowCollectionPadding: false, singleQuote: true }), diagnostics };
}
