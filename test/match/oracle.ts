/** Reads the oracle fixtures the matching tests compare against (see encode-oracle-matches.py). */
import { existsSync, readdirSync } from 'node:fs';
import { treeFromOracleJson, type OracleTreeJson } from '../../src/model/from-tree-json.js';
import type { ModuleTree } from '../../src/model/module-tree.js';
import { FIXTURES, readJson } from '../model/fixtures.js';

/** Module sets computed by compressed-tensors, as module indices. */
export interface OracleSets {
  readonly matched: number[];
  readonly quantized: number[];
  readonly attention_kv: number[];
  readonly log: string[];
}

/** One recipe's target/ignore lists and its results on both trees. */
export interface OracleRecipe {
  readonly targets: string[];
  readonly ignore: string[];
  readonly before: OracleSets;
  readonly after_head: OracleSets;
}

/** One oracle model: its tree before and after expert unpacking, and the recipes' results. */
export interface OracleModel {
  readonly id: string;
  readonly before: ModuleTree;
  readonly afterHead: ModuleTree;
  readonly recipes: Readonly<Record<string, OracleRecipe>>;
}

/** Bases of the classes llm-compressor substitutes while unpacking experts. */
const REPLACEMENT_CLASSES: Readonly<Record<string, readonly string[]>> = {
  LinearExperts2D: ['LinearExperts2D', 'ModuleList', 'Module'],
  ExpertMLPWithGate: ['ExpertMLPWithGate', 'Module'],
  ExpertMLPWithoutGate: ['ExpertMLPWithoutGate', 'Module'],
};

function decodeBits(b64: string): number[] {
  const bytes = Buffer.from(b64, 'base64');
  const out: number[] = [];
  for (let i = 0; i < bytes.length * 8; i++) if ((bytes[i >> 3]! >> (i & 7)) & 1) out.push(i);
  return out;
}

function decodeSets(raw: Record<string, unknown>): OracleSets {
  return {
    matched: decodeBits(raw.matched as string),
    quantized: decodeBits(raw.quantized as string),
    attention_kv: decodeBits(raw.attention_kv as string),
    log: raw.log as string[],
  };
}

/** Every oracle model with a matches file. */
export function oracleModels(): OracleModel[] {
  const root = `${FIXTURES}oracle/`;
  return readdirSync(root, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(`${root}${d.name}/matches.json.gz`))
    .map((d) => {
      const dir = `${root}${d.name}/`;
      const tree = readJson(`${dir}tree.json.gz`) as OracleTreeJson;
      const lin = readJson(`${dir}linearized.json.gz`) as { modules: [string, string][] };
      const raw = readJson(`${dir}matches.json.gz`) as Record<string, Record<string, unknown>>;
      const recipes: Record<string, OracleRecipe> = {};
      for (const [id, r] of Object.entries(raw)) {
        recipes[id] = {
          targets: r.targets as string[],
          ignore: r.ignore as string[],
          before: decodeSets(r.before as Record<string, unknown>),
          after_head: decodeSets(r.after_head as Record<string, unknown>),
        };
      }
      const classes = { ...tree.classes, ...REPLACEMENT_CLASSES };
      return {
        id: d.name,
        before: treeFromOracleJson(tree),
        afterHead: treeFromOracleJson({ classes, modules: lin.modules, params: [] }),
        recipes,
      };
    });
}
