/**
 * "Did you mean" candidates drawn from a model's module names. Names are
 * compared by shape (integer components replaced by `#`), so a model with
 * 70k modules offers a few hundred candidates, not 70k.
 */
import { didYouMean } from '../../diagnostics.js';
import type { ModuleTree } from '../../model/module-tree.js';
import { compilePattern } from '../pattern.js';

const shapesCache = new WeakMap<ModuleTree, Map<string, string>>();

/** A name with every integer component replaced by `#`. */
export function shapeOf(name: string): string {
  return name.replace(/(^|\.)\d+(?=\.|$)/g, '$1#');
}

/** Distinct name shapes, each with its first module name. */
function shapes(tree: ModuleTree): Map<string, string> {
  let map = shapesCache.get(tree);
  if (map) return map;
  map = new Map();
  for (const n of tree.names) {
    const s = shapeOf(n);
    if (!map.has(s)) map.set(s, n);
  }
  shapesCache.set(tree, map);
  return map;
}

/** Puts `text`'s integer components back into a shape with the same number of `#`s, else undefined. */
function instantiate(shape: string, text: string): string | undefined {
  const numbers = text.split('.').filter((c) => /^\d+$/.test(c));
  const slots = shape.split('.').filter((c) => c === '#').length;
  if (numbers.length !== slots) return undefined;
  let k = 0;
  return shape
    .split('.')
    .map((c) => (c === '#' ? numbers[k++]! : c))
    .join('.');
}

/** The module name or class name nearest to a plain pattern, if one is plausibly meant. */
export function nearestName(tree: ModuleTree, text: string): string | undefined {
  const byShape = shapes(tree);
  const shape = didYouMean(shapeOf(text), byShape.keys());
  const classes = tree.classes.map((c) => c.name);
  const cls = didYouMean(text, classes);
  if (shape === undefined) return cls;
  const concrete = instantiate(shape, text);
  const name = concrete !== undefined && tree.names.includes(concrete) ? concrete : byShape.get(shape)!;
  if (cls === undefined) return name;
  return shapeOf(text).includes('.') ? name : cls;
}

/**
 * A corrected `re:` pattern whose literal core (the pattern without a
 * leading `^`/`.*` and a trailing `$`/`.*`, with `\.` read as `.`) is the
 * nearest run of name components, provided the correction matches something.
 */
export function nearestRegex(tree: ModuleTree, body: string): string | undefined {
  const m = /^(\^?(?:\.\*)?)(.*?)((?:\$|\.\*)?)$/s.exec(body)!;
  const [, lead, coreText, tail] = m as unknown as [string, string, string, string];
  const core = coreText.replace(/\\\./g, '.');
  if (!/^[A-Za-z0-9_.]+$/.test(core)) return undefined;
  const parts = core.split('.').length;
  const windows = new Set<string>();
  for (const s of shapes(tree).keys()) {
    const cs = s.split('.');
    for (let i = 0; i + parts <= cs.length; i++) windows.add(cs.slice(i, i + parts).join('.'));
  }
  const best = didYouMean(shapeOf(core), windows);
  if (best === undefined) return undefined;
  const concrete = instantiate(best, core);
  if (concrete === undefined) return undefined;
  const escaped = coreText.includes('\\.') ? concrete.replace(/\./g, '\\.') : concrete;
  const candidate = `re:${lead}${escaped}${tail}`;
  const test = compilePattern({ text: candidate, origin: undefined }).value.test;
  return test && tree.names.some((n) => test(n)) ? candidate : undefined;
}
