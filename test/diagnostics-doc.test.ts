import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = new URL('..', import.meta.url).pathname;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return path.endsWith('.ts') && !path.endsWith('.generated.ts') ? [path] : [];
  });
}

/** Every literal code passed to `error(…)` / `warning(…)` anywhere under src/. */
function codesInSource(): Map<string, string> {
  const codes = new Map<string, string>();
  for (const file of sourceFiles(join(root, 'src'))) {
    for (const m of readFileSync(file, 'utf8').matchAll(/\b(?:error|warning)\(\s*'([a-z0-9]+(?:-[a-z0-9]+)*)'/g)) {
      if (!codes.has(m[1]!)) codes.set(m[1]!, file.slice(root.length));
    }
  }
  return codes;
}

/** `### code` sections of docs/diagnostics.md with their bodies. */
function documented(): Map<string, string> {
  const text = readFileSync(join(root, 'docs/diagnostics.md'), 'utf8');
  const sections = new Map<string, string>();
  const parts = text.split(/^### /m).slice(1);
  for (const part of parts) {
    const [heading, ...body] = part.split('\n');
    sections.set(heading!.trim(), body.join('\n').split(/^## /m)[0]!);
  }
  return sections;
}

describe('docs/diagnostics.md', () => {
  const codes = codesInSource();
  const docs = documented();

  it('finds the codes used in src/', () => {
    expect(codes.size).toBeGreaterThan(20);
    expect(codes.has('unknown-modifier')).toBe(true);
  });

  for (const [code, file] of codes) {
    it(`documents "${code}" (${file}) with a sentence and an example`, () => {
      const body = docs.get(code);
      expect(body, `add a "### ${code}" section to docs/diagnostics.md`).toBeDefined();
      expect(body!.trim().length).toBeGreaterThan(20);
      expect(body, `the "${code}" section needs an example in a fenced block`).toMatch(/```[\s\S]*```/);
    });
  }
});
