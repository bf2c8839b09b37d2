/** Reads the committed model fixtures (oracle dumps and generated trees). */
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import type { OracleTreeJson } from '../../src/model/from-tree-json.js';

/** Root of the committed fixtures. */
export const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));

/** Reads a JSON file, gunzipping `.gz` files. */
export function readJson(path: string): unknown {
  const bytes = readFileSync(path);
  return JSON.parse((path.endsWith('.gz') ? gunzipSync(bytes) : bytes).toString('utf8'));
}

/** One dumped model: its config and the tree transformers built from it. */
export interface TreeFixture {
  readonly id: string;
  readonly dir: string;
  readonly config: Record<string, unknown>;
  readonly tree: OracleTreeJson;
}

/** Every fixture under `test/fixtures/<group>/` (`oracle` or `trees`). */
export function treeFixtures(group: 'oracle' | 'trees'): TreeFixture[] {
  const root = `${FIXTURES}${group}/`;
  if (!existsSync(root)) return [];
  return readdirSync(root, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .flatMap((d) => {
      const dir = `${root}${d.name}/`;
      return readdirSync(dir)
        .filter((f) => f.endsWith('config.json'))
        .flatMap((f) => {
          const stem = f.slice(0, -'config.json'.length);
          const treePath = [`${dir}${stem}tree.json.gz`, `${dir}${stem}tree.json`].find((p) => existsSync(p));
          if (!treePath) return [];
          return {
            id: `${d.name}/${stem || 'default'}`.replace(/[.-]$/, ''),
            dir,
            config: readJson(`${dir}${f}`) as Record<string, unknown>,
            tree: readJson(treePath) as OracleTreeJson,
          };
        });
    });
}
