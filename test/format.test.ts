import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatDsl, printDsl } from '../src/format/print-dsl.js';
import type { RecipeDocument } from '../src/parse/document.js';
import { parseDsl } from '../src/parse/dsl.js';
import { memorySourceHost } from '../src/source-host.js';

const CASES = join(import.meta.dirname, 'cases');
const FORMAT_CASES = join(CASES, 'dsl-format');
const host = memorySourceHost({});

function format(text: string): string {
  const r = formatDsl({ path: 'input.qr', text });
  if (r.value === undefined) throw new Error(r.diagnostics.map((d) => d.message).join('\n'));
  return r.value;
}

function parse(text: string): RecipeDocument {
  const r = parseDsl({ path: 'input.qr', text }, host);
  const errors = r.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length > 0) throw new Error(`${errors.map((d) => d.message).join('\n')}\n---\n${text}`);
  return r.value.document;
}

describe('quantc fmt', () => {
  for (const name of readdirSync(FORMAT_CASES).sort()) {
    it(`formats ${name} (golden) and is idempotent`, async () => {
      const input = readFileSync(join(FORMAT_CASES, name, 'input.qr'), 'utf8');
      const out = format(input);
      await expect(out).toMatchFileSnapshot(join(FORMAT_CASES, name, 'formatted.qr'));
      expect(format(out)).toBe(out);
    });
  }

  it('keeps every comment', () => {
    const input = readFileSync(join(FORMAT_CASES, 'comments', 'input.qr'), 'utf8');
    const comments = (t: string) => t.match(/#[^\n]*/g)!.map((c) => c.trim()).sort();
    expect(comments(format(input))).toEqual(comments(input));
  });

  it('formats the kitchen sink idempotently without changing its meaning', () => {
    const input = readFileSync(join(CASES, 'dsl', 'kitchen-sink', 'input.qr'), 'utf8');
    const out = format(input);
    expect(format(out)).toBe(out);
    expect(parse(out)).toEqual(parse(input));
  });

  it('keeps a comment placed at the end of any line or on its own line anywhere', () => {
    const input = readFileSync(join(CASES, 'dsl', 'kitchen-sink', 'input.qr'), 'utf8');
    const lines = input.split('\n');
    const meaning = parse(input);
    for (let i = 0; i < lines.length; i++) {
      for (const variant of ['trailing', 'own-line'] as const) {
        const edited = [...lines];
        if (variant === 'trailing') edited[i] = `${edited[i]}  # note ${i}`;
        else edited.splice(i, 0, `# note ${i}`);
        const text = edited.join('\n');
        const out = format(text);
        expect(out, `${variant} comment at line ${i + 1}`).toContain(`# note ${i}`);
        expect(format(out), `${variant} comment at line ${i + 1}`).toBe(out);
        expect(parse(out)).toEqual(meaning);
      }
    }
  });

  it('reports syntax errors instead of formatting', () => {
    const r = formatDsl({ path: 'x.qr', text: 'stage {' });
    expect(r.value).toBeUndefined();
    expect(r.diagnostics[0]!.code).toBe('syntax-error');
  });
});

describe('printDsl', () => {
  it('round-trips the kitchen sink: parse → print → parse', () => {
    const doc = parse(readFileSync(join(CASES, 'dsl', 'kitchen-sink', 'input.qr'), 'utf8'));
    const printed = printDsl(doc);
    expect(parse(printed)).toEqual(doc);
    expect(printDsl(parse(printed))).toBe(printed);
  });

  it('prints class-like names bare, module names quoted and valid re: strings as regex literals', () => {
    const doc: RecipeDocument = {
      stages: [{ name: 'quant', groups: [{ name: 'quant', modifiers: [{ type: 'QuantizationModifier', args: { targets: ['Linear', 'lm_head', 're:.*gate$', 're:(?<bad>x)'] } }] }] }],
    };
    expect(printDsl(doc)).toContain('targets = [Linear, "lm_head", re".*gate$", "re:(?<bad>x)"]');
  });

  const word = fc.stringMatching(/^[a-z_][a-z0-9_]{0,8}$/);
  const anyName = fc.oneof(word, fc.stringMatching(/^[A-Z][A-Za-z0-9]{0,8}$/), fc.string({ maxLength: 8 }), fc.constantFrom('group', 'stage', 'true', 'args', ''));
  const scalar = fc.oneof(
    fc.string({ maxLength: 12 }),
    fc.stringMatching(/^[A-Z][A-Za-z0-9_]{0,10}$/),
    fc.constantFrom('re:.*mlp\\.gate$', 're:(?P<n>\\d+)\\Z', 're:a"b', 're:(?<x>y)', 'Linear', 'lm_head'),
    fc.integer({ min: -1_000_000, max: 1_000_000 }),
    fc.double({ noNaN: true, noDefaultInfinity: true }).filter((x) => !Object.is(x, -0)),
    fc.boolean(),
    fc.constant(null),
  );
  const value = fc.letrec<{ v: unknown }>((tie) => ({
    v: fc.oneof({ depthSize: 'small', withCrossShrink: true }, scalar, fc.array(tie('v'), { maxLength: 4 }), fc.dictionary(anyName, tie('v'), { maxKeys: 4 })),
  })).v;
  const args = fc.dictionary(anyName, value, { maxKeys: 5 });
  const modifier = fc.record({ type: fc.oneof(fc.stringMatching(/^[A-Z][A-Za-z]{0,12}Modifier$/), anyName), args });
  const group = fc.record({ name: anyName, modifiers: fc.uniqueArray(modifier, { maxLength: 3, selector: (m) => m.type }) });
  const stage = fc
    .record({ name: anyName, groups: fc.uniqueArray(group, { maxLength: 3, selector: (g) => g.name }) })
    // An empty group named like its stage has no direct-modifier spelling; it prints as `group`.
    .filter((s) => s.groups.every((g, i) => g.name !== s.name || i === 0 || g.modifiers.length === 0 || s.groups.slice(0, i).every((h) => h.name !== s.name)));
  const rewrite = fc.record({ class: fc.stringMatching(/^[A-Z][A-Za-z0-9]{0,12}$/), experts: fc.constant('experts'), is_transposed: fc.boolean() });
  const document = fc.record(
    {
      recipe: fc.record({ name: fc.string({ maxLength: 10 }), version: fc.string({ maxLength: 6 }), model: fc.string({ maxLength: 10 }) }, { requiredKeys: [] }),
      moe: fc.record(
        {
          calibrate_all_experts: fc.boolean(),
          on_unsupported: fc.constantFrom('error', 'warning'),
          min_expert_tokens: fc.integer({ min: 1, max: 1_000_000 }),
          on_low_coverage: fc.constantFrom('error', 'warning', 'fallback'),
          rewrites: fc.uniqueArray(rewrite, { minLength: 1, maxLength: 2, selector: (r) => r.class }),
        },
        { requiredKeys: [] },
      ),
      stages: fc.uniqueArray(stage, { maxLength: 3, selector: (s) => s.name }),
      args: fc.dictionary(anyName, value, { maxKeys: 3 }),
    },
    { requiredKeys: ['stages'] },
  );

  it('property: printDsl → parseDsl gives back the same document', () => {
    fc.assert(
      fc.property(document, (doc) => {
        const d = doc as unknown as RecipeDocument;
        if (d.recipe && Object.keys(d.recipe).length === 0) return;
        const printed = printDsl(d);
        expect(parse(printed)).toEqual(d);
        expect(format(printed)).toBe(printed);
      }),
      { numRuns: 300 },
    );
  });
});
