/**
 * Export of the IR as JSON: stable key order, spans replaced by
 * `"file:line:col"` strings so the output does not depend on offsets.
 */
import type { RecipeIR } from '../ir/types.js';
import { lineColAt, type Span } from '../source.js';

function isSpan(x: unknown): x is Span {
  return typeof x === 'object' && x !== null && typeof (x as Span).path === 'string' && typeof (x as Span).start === 'number' && typeof (x as Span).end === 'number';
}

/** The IR as plain JSON with spans as locations. */
export function irToJson(ir: RecipeIR, sources: ReadonlyMap<string, string>): unknown {
  const where = (s: Span): string => {
    const text = sources.get(s.path);
    if (text === undefined) return s.path;
    const { line, column } = lineColAt(text, s.start);
    return `${s.path}:${line}:${column}`;
  };
  const walk = (x: unknown): unknown => {
    if (isSpan(x)) return where(x);
    if (Array.isArray(x)) return x.map(walk);
    if (typeof x === 'object' && x !== null) return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, v === undefined ? null : walk(v)]));
    return x;
  };
  return walk(ir);
}

/** The IR as JSON text. */
export function exportJson(ir: RecipeIR, sources: ReadonlyMap<string, string>): string {
  return `${JSON.stringify(irToJson(ir, sources), null, 2)}\n`;
}
