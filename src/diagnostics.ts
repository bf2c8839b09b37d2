/**
 * Diagnostics are values: a stable code, a severity, one sentence and an
 * optional span. Every stage returns them instead of throwing, and every
 * code is documented in docs/diagnostics.md (a test enforces it).
 */
import type { Span } from './source.js';

/** How bad a diagnostic is. `error` stops the pipeline after its stage. */
export type Severity = 'error' | 'warning' | 'info';

/** A related location, e.g. where a binding was defined. */
export interface DiagnosticNote {
  readonly message: string;
  readonly span?: Span;
}

/** A problem found while compiling a recipe or reading a model. */
export interface Diagnostic {
  /** Stable kebab-case identity, e.g. `unknown-modifier`. */
  readonly code: string;
  readonly severity: Severity;
  /** One sentence; names in double quotes; may end with `Did you mean "x"?`. */
  readonly message: string;
  /** Primary location; absent for problems outside any source text. */
  readonly span?: Span;
  readonly notes?: readonly DiagnosticNote[];
}

/** What every pipeline stage returns. */
export interface Result<T> {
  readonly value: T;
  readonly diagnostics: readonly Diagnostic[];
}

/** Builds an error diagnostic. */
export function error(code: string, message: string, span?: Span, notes?: readonly DiagnosticNote[]): Diagnostic {
  return withOptional({ code, severity: 'error', message }, span, notes);
}

/** Builds a warning diagnostic. */
export function warning(code: string, message: string, span?: Span, notes?: readonly DiagnosticNote[]): Diagnostic {
  return withOptional({ code, severity: 'warning', message }, span, notes);
}

function withOptional(d: Diagnostic, span?: Span, notes?: readonly DiagnosticNote[]): Diagnostic {
  if (span === undefined && (notes === undefined || notes.length === 0)) return d;
  return { ...d, ...(span ? { span } : {}), ...(notes && notes.length > 0 ? { notes } : {}) };
}

/** True when any diagnostic is an error. */
export function hasErrors(diagnostics: readonly Diagnostic[]): boolean {
  return diagnostics.some((d) => d.severity === 'error');
}

/** Returns a copy of `d` with its severity replaced. */
export function withSeverity(d: Diagnostic, severity: Severity): Diagnostic {
  return { ...d, severity };
}

/**
 * The candidate closest to `name` by edit distance, if close enough to be a
 * plausible typo (distance at most a third of the longer string, min 2).
 */
export function didYouMean(name: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  const lower = name.toLowerCase();
  for (const candidate of candidates) {
    if (candidate === name) continue;
    const d = candidate.toLowerCase() === lower ? 0.5 : editDistance(lower, candidate.toLowerCase(), bestDistance);
    if (d < bestDistance) {
      bestDistance = d;
      best = candidate;
    }
  }
  if (best === undefined) return undefined;
  const limit = Math.max(2, Math.floor(Math.max(name.length, best.length) / 3));
  return bestDistance <= limit ? best : undefined;
}

/** Formats the "Did you mean" suffix, or '' when there is no suggestion. */
export function suggestion(name: string, candidates: Iterable<string>): string {
  const s = didYouMean(name, candidates);
  return s === undefined ? '' : ` Did you mean "${s}"?`;
}

/** Levenshtein distance with an early exit once `cap` is exceeded. */
export function editDistance(a: string, b: string, cap = Infinity): number {
  if (Math.abs(a.length - b.length) > cap) return Infinity;
  let prev = new Array<number>(b.length + 1);
  let cur = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    cur[0] = i;
    let rowMin = cur[0];
    for (let j = 1; j <= b.length; j++) {
      const cost = a.charCodeAt(i - 1) === b.charCodeAt(j - 1) ? 0 : 1;
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost);
      if (cur[j]! < rowMin) rowMin = cur[j]!;
    }
    if (rowMin > cap) return Infinity;
    [prev, cur] = [cur, prev];
  }
  return prev[b.length]!;
}
