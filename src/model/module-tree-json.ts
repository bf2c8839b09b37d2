/**
 * Module-tree JSON: the escape hatch for architectures quantc has no
 * descriptor for. Reads the format `quantc modules --format json` prints
 * (a list of `{name, class, bases, params}` in `named_modules()` order, bare
 * or under `"modules"`) and the fixture dump format (`classes`, `modules`,
 * `params`), validated against `schemas/module-tree.schema.json`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { error, type Diagnostic, type Result } from '../diagnostics.js';
import { treeFromOracleJson, parentName, type OracleTreeJson } from './from-tree-json.js';
import { TreeBuilder, classOf, paramsOf, treeSize, type ModuleTree } from './module-tree.js';

/** One module in the `quantc modules --format json` format. */
export interface ModuleJson {
  readonly name: string;
  readonly class: string;
  /** MRO after the class itself, ending with `Module`. */
  readonly bases?: readonly string[];
  readonly params?: Readonly<Record<string, { readonly shape: readonly number[]; readonly dtype?: string }>>;
}

/** The object form: modules plus the model type they came from. */
export interface ModuleTreeObjectJson {
  readonly model_type?: string;
  readonly format_version?: number;
  readonly modules: readonly ModuleJson[];
}

const SCHEMA_ID = 'https://quantc.dev/schemas/module-tree.schema.json';

interface Validators {
  readonly list: ValidateFunction;
  readonly object: ValidateFunction;
  readonly dump: ValidateFunction;
}

let validators: Validators | undefined;

/**
 * Compiles the schema once, on first use. AJV is required lazily: loading it
 * costs more than expanding any config, and only a tree JSON needs it.
 */
function getValidators(): Validators {
  if (validators) return validators;
  const Ajv = createRequire(import.meta.url)('ajv') as { default: new (o: object) => { addSchema(s: object): void; compile(s: object): ValidateFunction } };
  const ajv = new Ajv.default({ allErrors: false, strict: false });
  ajv.addSchema(JSON.parse(readFileSync(schemaPath(), 'utf8')) as object);
  validators = {
    list: ajv.compile({ $ref: `${SCHEMA_ID}#/definitions/moduleList` }),
    object: ajv.compile({ $ref: `${SCHEMA_ID}#/definitions/moduleObject` }),
    dump: ajv.compile({ $ref: `${SCHEMA_ID}#/definitions/dump` }),
  };
  return validators;
}

function schemaPath(): string {
  for (const rel of ['../../schemas/module-tree.schema.json', '../../../schemas/module-tree.schema.json']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  return fileURLToPath(new URL('../../schemas/module-tree.schema.json', import.meta.url));
}

/** True when parsed JSON looks like a module tree rather than a config.json. */
export function looksLikeModuleTree(json: unknown): boolean {
  if (Array.isArray(json)) return true;
  return typeof json === 'object' && json !== null && 'modules' in json;
}

/** Validates parsed JSON and converts it into a ModuleTree. */
export function treeFromModuleJson(json: unknown, path: string): Result<ModuleTree | undefined> {
  const v = getValidators();
  const isDump = typeof json === 'object' && json !== null && !Array.isArray(json) && 'classes' in json;
  const validate = Array.isArray(json) ? v.list : isDump ? v.dump : v.object;
  if (!validate(json)) return fail(schemaError(path, validate.errors ?? []));
  const origin = { kind: 'module-tree-json', description: path };
  if (isDump) {
    const dump = json as OracleTreeJson;
    return checkStructure(dump.modules.map(([n]) => n), path, () => treeFromOracleJson(dump, origin));
  }
  const obj: ModuleTreeObjectJson = Array.isArray(json) ? { modules: json as ModuleJson[] } : (json as ModuleTreeObjectJson);
  return checkStructure(obj.modules.map((m) => m.name), path, () => buildFromModules(obj, origin));
}

function buildFromModules(obj: ModuleTreeObjectJson, origin: { kind: string; description: string }): ModuleTree {
  const b = new TreeBuilder();
  const index = new Map<string, number>();
  for (const m of obj.modules) {
    b.defineClass(m.class, m.bases ?? ['Module']);
    const i = b.add(m.name, m.class, m.name === '' ? -1 : index.get(parentName(m.name))!);
    index.set(m.name, i);
    for (const [p, info] of Object.entries(m.params ?? {})) b.param(i, p, info.shape, info.dtype ?? 'float32');
  }
  return b.build(obj.model_type, origin);
}

/** Root first, unique names, every parent listed before its children. */
function checkStructure(names: readonly string[], path: string, build: () => ModuleTree): Result<ModuleTree | undefined> {
  if (names[0] !== '') return fail(error('module-tree-invalid', `The module tree in "${path}" must start with the root module, whose name is "".`));
  const seen = new Set<string>();
  for (const name of names) {
    if (seen.has(name)) return fail(error('module-tree-invalid', `The module tree in "${path}" lists "${name}" twice.`));
    if (name !== '' && !seen.has(parentName(name))) {
      return fail(error('module-tree-invalid', `The module tree in "${path}" lists "${name}" before its parent "${parentName(name)}"; modules must be in named_modules() order.`));
    }
    seen.add(name);
  }
  return { value: build(), diagnostics: [] };
}

function schemaError(path: string, errors: readonly ErrorObject[]): Diagnostic {
  const e = errors[0];
  const where = e?.instancePath ? ` at ${e.instancePath}` : '';
  const why = e ? `${e.message ?? 'is invalid'}${e.params && 'additionalProperty' in e.params ? ` ("${String(e.params['additionalProperty'])}")` : ''}` : 'is invalid';
  return error('module-tree-invalid', `The module tree in "${path}" does not match schemas/module-tree.schema.json: the value${where} ${why}.`);
}

function fail(d: Diagnostic): Result<undefined> {
  return { value: undefined, diagnostics: [d] };
}

/** A tree in the `quantc modules --format json` format (what `treeFromModuleJson` reads back). */
export function treeToModuleJson(tree: ModuleTree): ModuleJson[] {
  const out: ModuleJson[] = [];
  for (let i = 0; i < treeSize(tree); i++) {
    const c = classOf(tree, i);
    const params: Record<string, { shape: readonly number[]; dtype: string }> = {};
    for (const p of paramsOf(tree, i)) params[p.name] = { shape: p.shape, dtype: p.dtype };
    out.push({ name: tree.names[i]!, class: c.name, bases: c.mro.slice(1), params });
  }
  return out;
}
