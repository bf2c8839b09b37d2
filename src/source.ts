/**
 * Source text and spans. Positions are stored as half-open UTF-16 offsets
 * and turned into line/column only when printed, so every stage can carry
 * spans cheaply.
 */

/** One input file as text. `path` is what diagnostics print. */
export interface Source {
  readonly path: string;
  readonly text: string;
}

/** A half-open range `[start, end)` of UTF-16 offsets into one source. */
export interface Span {
  readonly path: string;
  readonly start: number;
  readonly end: number;
}

/** A 1-based line and column. */
export interface LineCol {
  readonly line: number;
  readonly column: number;
}

const lineStartsCache = new WeakMap<object, number[]>();

function lineStarts(text: string): number[] {
  const key = Object(text) as object;
  const cached = lineStartsCache.get(key);
  if (cached) return cached;
  const starts = [0];
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) === 10) starts.push(i + 1);
  }
  lineStartsCache.set(key, starts);
  return starts;
}

/** Converts an offset into a 1-based line and column. */
export function lineColAt(text: string, offset: number): LineCol {
  const starts = lineStarts(text);
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid]! <= offset) lo = mid;
    else hi = mid - 1;
  }
  return { line: lo + 1, column: offset - starts[lo]! + 1 };
}

/** Returns the text of one 1-based line, without its line break. */
export function lineText(text: string, line: number): string {
  const starts = lineStarts(text);
  const start = starts[line - 1] ?? text.length;
  const next = starts[line];
  const end = next === undefined ? text.length : next - 1;
  return text.slice(start, end).replace(/\r$/, '');
}

/** Builds a span. */
export function span(path: string, start: number, end: number): Span {
  return { path, start, end: Math.max(start, end) };
}
