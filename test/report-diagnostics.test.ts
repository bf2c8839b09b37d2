/**
 * Code frames under diagnostics: the caret sits under the span, and a very
 * long source line (a one-line JSON or YAML recipe) is cut around the span
 * instead of printed whole.
 */
import { describe, expect, it } from 'vitest';
import { codeFrame } from '../src/report/diagnostics.js';

const frame = (text: string, start: number, end: number) => codeFrame({ path: 'r.yaml', start, end }, new Map([['r.yaml', text]]));

describe('codeFrame', () => {
  it('puts the caret under the span of a short line', () => {
    expect(frame('a: 1\nscheme: W4A17\n', 13, 18)).toBe('  |\n2 | scheme: W4A17\n  |         ^^^^^');
  });

  it('cuts a long line around the span and keeps the caret under it', () => {
    const line = `a: [${'x, '.repeat(2000)}BAD, ${'y, '.repeat(2000)}]`;
    const at = line.indexOf('BAD');
    const lines = frame(line, at, at + 3).split('\n');
    expect(lines[1]!.length).toBeLessThan(120);
    expect(lines[1]).toMatch(/^1 \| ….*BAD.*…$/);
    expect(lines[2]!.indexOf('^')).toBe(lines[1]!.indexOf('BAD'));
    expect(lines[2]!.trimEnd().endsWith('^^^')).toBe(true);
  });

  it('shows the start of a long line without a leading ellipsis', () => {
    const line = `BAD${'x'.repeat(500)}`;
    expect(frame(line, 0, 3).split('\n')[1]).toBe(`1 | BAD${'x'.repeat(97)}…`);
  });
});
