/**
 * Published `config.json` files bundled with quantc, so a recipe can be
 * planned against a Hugging Face model id (`zai-org/GLM-4.7-Flash`) with no
 * download. Files live in `src/model/hub/<org>__<name>.json`; look-up is
 * case-insensitive.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** True when `s` has the shape of a Hugging Face model id (`org/name`). */
export function looksLikeModelId(s: string): boolean {
  return /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(s);
}

/** The bundled hub folder, from the sources or from `dist/`. */
function hubDir(): string | undefined {
  for (const rel of ['./hub/', '../../../src/model/hub/']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** Every bundled model id, e.g. `zai-org/GLM-4.7-Flash`, sorted. */
export function bundledModelIds(): string[] {
  const dir = hubDir();
  if (!dir) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json') && f.includes('__'))
    .map((f) => f.slice(0, -'.json'.length).replace('__', '/'))
    .sort((a, b) => a.localeCompare(b));
}

/** The bundled config for `id` (case-insensitive) with its canonical id, or undefined. */
export function bundledConfig(id: string): { id: string; path: string; text: string } | undefined {
  const dir = hubDir();
  const canonical = bundledModelIds().find((known) => known.toLowerCase() === id.toLowerCase());
  if (!dir || !canonical) return undefined;
  const path = `${dir}${canonical.replace('/', '__')}.json`;
  return { id: canonical, path, text: readFileSync(path, 'utf8') };
}
