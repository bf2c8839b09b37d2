/**
 * A RecipeDocument → the syntax tree `printDsl` prints. Direct modifiers of
 * a stage are written for the group named like the stage, the other groups
 * as `group` blocks; `moe.rewrites` become `rewrite` blocks.
 */
import type { RecipeDocument } from '../parse/document.js';
import type { EntrySyntax, FileSyntax, GroupSyntax, ItemSyntax, ModifierSyntax, NameSyntax, RewriteSyntax, ValueSyntax } from '../parse/dsl-syntax.js';
import type { Span } from '../source.js';
import { isBareName, needsQuotes, stringSyntax } from './names.js';

const NOWHERE: Span = { path: '', start: 0, end: 0 };

function nameOf(text: string): NameSyntax {
  return { text, quoted: needsQuotes(text), span: NOWHERE };
}

/** Converts a plain JSON value into value syntax. */
export function valueSyntax(v: unknown): ValueSyntax {
  if (v === null || v === undefined) return { kind: 'null', span: NOWHERE };
  if (typeof v === 'string') return stringSyntax(v);
  if (typeof v === 'number') return { kind: 'number', value: v, raw: String(v), span: NOWHERE };
  if (typeof v === 'boolean') return { kind: 'bool', value: v, span: NOWHERE };
  if (Array.isArray(v)) return { kind: 'list', elements: v.map(valueSyntax), span: NOWHERE };
  return { kind: 'map', entries: entries(v as Record<string, unknown>), span: NOWHERE };
}

/** MoE settings whose values are enum words, printed bare: `on_low_coverage = fallback`. */
const MOE_ENUMS = new Set(['on_unsupported', 'on_low_coverage', 'experts_layout', 'router_kind']);

function entries(o: Readonly<Record<string, unknown>>, moe = false): EntrySyntax[] {
  return Object.entries(o).map(([k, v]) => ({
    kind: 'entry',
    key: nameOf(k),
    value: moe && MOE_ENUMS.has(k) && typeof v === 'string' && isBareName(v) ? { kind: 'ident', name: v, span: NOWHERE } : valueSyntax(v),
    span: NOWHERE,
  }));
}

function isRewriteList(v: unknown): v is Record<string, unknown>[] {
  return Array.isArray(v) && v.length > 0 && v.every((r) => r !== null && typeof r === 'object' && !Array.isArray(r) && typeof (r as Record<string, unknown>).class === 'string');
}

/** Converts a document into the syntax tree of its canonical DSL text. */
export function documentToSyntax(doc: RecipeDocument): FileSyntax {
  const items: ItemSyntax[] = [];
  const r = doc.recipe;
  if (r && (r.name !== undefined || r.version !== undefined)) {
    items.push({
      kind: 'header',
      keyword: NOWHERE,
      ...(r.name !== undefined ? { name: { value: r.name, span: NOWHERE } } : {}),
      ...(r.version !== undefined ? { version: { value: r.version, span: NOWHERE }, versionKeyword: NOWHERE } : {}),
      span: NOWHERE,
    });
  }
  if (r?.model !== undefined) items.push({ kind: 'model', keyword: NOWHERE, model: { value: r.model, span: NOWHERE }, span: NOWHERE });
  if (doc.args !== undefined) items.push({ kind: 'args', keyword: NOWHERE, entries: entries(doc.args), span: NOWHERE });
  if (doc.moe !== undefined) {
    const { rewrites, ...fields } = doc.moe as Record<string, unknown>;
    const moeItems: (EntrySyntax | RewriteSyntax)[] = entries(fields, true);
    if (isRewriteList(rewrites)) {
      for (const { class: cls, ...body } of rewrites) {
        moeItems.push({ kind: 'rewrite', name: nameOf(cls as string), entries: entries(body, true), span: NOWHERE });
      }
    } else if (rewrites !== undefined) {
      moeItems.push(...entries({ rewrites }));
    }
    items.push({ kind: 'moe', keyword: NOWHERE, items: moeItems, span: NOWHERE });
  }
  for (const stage of doc.stages) {
    const stageItems: (GroupSyntax | ModifierSyntax)[] = [];
    for (const g of stage.groups) {
      const modifiers: ModifierSyntax[] = g.modifiers.map((m) => ({ kind: 'modifier', name: nameOf(m.type), entries: entries(m.args), span: NOWHERE }));
      if (g.name === stage.name && modifiers.length > 0) stageItems.push(...modifiers);
      else stageItems.push({ kind: 'group', name: nameOf(g.name), modifiers, span: NOWHERE });
    }
    items.push({ kind: 'stage', name: nameOf(stage.name), items: stageItems, span: NOWHERE });
  }
  return { kind: 'file', items, span: NOWHERE };
}
