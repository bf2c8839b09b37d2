/**
 * Renders diagnostics for people (`file:line:col: error CODE: message` and a
 * caret frame) and for tools (JSON with line/column resolved).
 */
import type { Diagnostic } from '../diagnostics.js';
import { lineColAt, lineText, type Span } from '../source.js';

/** Source texts by path, for code frames. */
export type SourceMap = ReadonlyMap<string, string>;

/** `path:line:col` of a span's start, or just the path when its text is unknown. */
export function formatLocation(span: Span, sources: SourceMap): string {
  const text = sources.get(span.path);
  if (text === undefined) return span.path;
  const { line, column } = lineColAt(text, span.start);
  return `${span.path}:${line}:${column}`;
}

/** The one-line header of a diagnostic. */
export function formatHeader(d: Diagnostic, sources: SourceMap): string {
  const where = d.span ? `${formatLocation(d.span, sources)}: ` : '';
  return `${where}${d.severity} ${d.code}: ${d.message}`;
}

/** Widest source line a frame shows; a longer one (minified JSON, one-line YAML) is cut around the span. */
const FRAME_WIDTH = 100;

/** Characters of context kept before the span when a long line is cut. */
const FRAME_CONTEXT = 30;

/** A caret frame under the span's first line: `  12 | text` / `     |   ^^^`. */
export function codeFrame(span: Span, sources: SourceMap): string {
  const text = sources.get(span.path);
  if (text === undefined) return '';
  const start = lineColAt(text, span.start);
  const end = lineColAt(text, Math.max(span.start, span.end - 1));
  const line = lineText(text, start.line);
  let width = end.line === start.line ? Math.max(1, end.column - start.column + 1) : Math.max(1, line.length - start.column + 1);
  let src = line;
  let column = start.column;
  if (line.length > FRAME_WIDTH) {
    const from = Math.max(0, Math.min(start.column - 1 - FRAME_CONTEXT, line.length - FRAME_WIDTH));
    const to = from + FRAME_WIDTH;
    src = `${from > 0 ? '…' : ''}${line.slice(from, to)}${to < line.length ? '…' : ''}`;
    column = start.column - from + (from > 0 ? 1 : 0);
    width = Math.max(1, Math.min(width, to - (start.column - 1)));
  }
  const gutter = String(start.line);
  const pad = ' '.repeat(gutter.length);
  const lead = src.slice(0, column - 1).replace(/[^\t]/g, ' ');
  return `${pad} |\n${gutter} | ${src}\n${pad} | ${lead}${'^'.repeat(width)}`;
}

/** Full human rendering of one diagnostic, notes included. */
export function renderDiagnostic(d: Diagnostic, sources: SourceMap): string {
  const lines = [formatHeader(d, sources)];
  if (d.span) {
    const frame = codeFrame(d.span, sources);
    if (frame) lines.push(frame);
  }
  for (const note of d.notes ?? []) {
    lines.push(note.span ? `${formatLocation(note.span, sources)}: note: ${note.message}` : `note: ${note.message}`);
    if (note.span) {
      const frame = codeFrame(note.span, sources);
      if (frame) lines.push(frame);
    }
  }
  return lines.join('\n');
}

/** Human rendering of a list, with a closing count line when there is anything to say. */
export function renderDiagnostics(diagnostics: readonly Diagnostic[], sources: SourceMap): string {
  if (diagnostics.length === 0) return '';
  const body = diagnostics.map((d) => renderDiagnostic(d, sources)).join('\n\n');
  const errors = diagnostics.filter((d) => d.severity === 'error').length;
  const warnings = diagnostics.filter((d) => d.severity === 'warning').length;
  return `${body}\n\n${plural(errors, 'error')}, ${plural(warnings, 'warning')}\n`;
}

/** Compact one-line form used by golden tests: `3:5 error code message`. */
export function compactDiagnostic(d: Diagnostic, sources: SourceMap): string {
  let where = '-';
  if (d.span) {
    const text = sources.get(d.span.path);
    if (text !== undefined) {
      const { line, column } = lineColAt(text, d.span.start);
      where = `${line}:${column}`;
    }
  }
  return `${where} ${d.severity} ${d.code} ${d.message}`;
}

/** JSON form of a diagnostic with line/column resolved (1-based, end exclusive). */
export interface DiagnosticJson {
  readonly code: string;
  readonly severity: string;
  readonly message: string;
  readonly span?: { file: string; start: { line: number; column: number; offset: number }; end: { line: number; column: number; offset: number } };
  readonly notes?: readonly { message: string; span?: DiagnosticJson['span'] }[];
}

function spanJson(span: Span, sources: SourceMap): DiagnosticJson['span'] {
  const text = sources.get(span.path) ?? '';
  const s = lineColAt(text, span.start);
  const e = lineColAt(text, span.end);
  return {
    file: span.path,
    start: { line: s.line, column: s.column, offset: span.start },
    end: { line: e.line, column: e.column, offset: span.end },
  };
}

/** Converts a diagnostic to its JSON form. */
export function diagnosticToJson(d: Diagnostic, sources: SourceMap): DiagnosticJson {
  return {
    code: d.code,
    severity: d.severity,
    message: d.message,
    ...(d.span ? { span: spanJson(d.span, sources) } : {}),
    ...(d.notes && d.notes.length > 0
      ? { notes: d.notes.map((n) => ({ message: n.message, ...(n.span ? { span: spanJson(n.span, sources) } : {}) })) }
      : {}),
  };
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
