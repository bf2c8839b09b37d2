/**
 * `--model PATH` for every command: a Hugging Face model folder
 * (config.json plus safetensors headers when present), a bare config.json,
 * a module-tree JSON, or a bundled model id. Returns the ModuleTree as
 * transformers builds it in memory, its MoE facts, and what the checkpoint
 * cross-check found. Every failure is a diagnostic, never an exception.
 */
import { VISION_LANGUAGE, visionLanguageText } from './architectures/vision-language.js';
import { error, hasErrors, suggestion, warning, type Diagnostic, type Result } from '../diagnostics.js';
import { expandConfig } from './architectures/index.js';
import { crossCheck, type CheckpointInfo } from './checkpoint.js';
import { bundledConfig, bundledModelIds, looksLikeModelId } from './hub.js';
import { isHostDiagnostic, nodeModelHost, type ModelHost } from './model-host.js';
import type { ModuleTree } from './module-tree.js';
import { looksLikeModuleTree, treeFromModuleJson } from './module-tree-json.js';
import type { MoeFacts } from './moe-facts.js';
import { parseIndex, parseSafetensorsHeader, type StoredTensor } from './safetensors.js';

/** How the model was given. */
export type ModelSourceKind = 'folder' | 'config' | 'module-tree-json' | 'hub';

/** A loaded model: its tree, the config it came from, and its MoE facts. */
export interface LoadedModel {
  readonly tree: ModuleTree;
  /** The config.json object; null for a module-tree JSON. */
  readonly config: Record<string, unknown> | null;
  /** MoE blocks as the descriptor built them; empty for a module-tree JSON (the MoE stage detects those from the tree). */
  readonly moe: MoeFacts;
  readonly source: { readonly kind: ModelSourceKind; readonly path: string };
  /** Present when the folder holds safetensors files or an index. */
  readonly checkpoint?: CheckpointInfo;
}

const INDEX_FILE = 'model.safetensors.index.json';

/** Loads `--model`'s argument: a folder, a config.json, a module-tree JSON, or a bundled model id. */
export function loadModel(pathOrId: string, host: ModelHost = nodeModelHost): Result<LoadedModel | undefined> {
  const kind = host.kind(pathOrId);
  if (kind === 'directory') return loadFolder(pathOrId.replace(/\/+$/, '') || '/', host);
  if (kind === 'file') return loadJsonFile(pathOrId, host);
  if (looksLikeModelId(pathOrId)) {
    const bundled = bundledConfig(pathOrId);
    if (!bundled) {
      const ids = bundledModelIds();
      return fail(
        error(
          'unknown-model-id',
          `"${pathOrId}" is neither a file, a folder, nor a bundled model id.${suggestion(pathOrId, ids.filter((id) => digitsOf(id) === digitsOf(pathOrId)))} Download the model's config.json and pass its path instead.`,
          undefined,
          [{ message: `Bundled model ids: ${ids.join(', ')}.` }],
        ),
      );
    }
    return fromConfigText(bundled.text, bundled.path, 'hub', `bundled config of ${bundled.id}`);
  }
  // A bundled id typed without its organisation ("Llama-3.1-8B").
  const named = bundledModelIds().find((id) => id.slice(id.indexOf('/') + 1).toLowerCase() === pathOrId.toLowerCase());
  return fail(
    error(
      'model-not-found',
      `The model "${pathOrId}" does not exist: expected a model folder, a config.json, a module-tree JSON, or a model id like "org/name".${named ? ` Did you mean "${named}"?` : ''}`,
    ),
  );
}

/** The digits of a model id: its sizes and versions, which a typo suggestion must not change (70B is not 8B). */
function digitsOf(id: string): string {
  return id.replace(/\D/g, '');
}

function loadJsonFile(path: string, host: ModelHost): Result<LoadedModel | undefined> {
  const text = host.readText(path);
  if (isHostDiagnostic(text)) return fail(text);
  const json = parseJson(text, path);
  if (isHostDiagnostic(json)) return fail(json);
  if (looksLikeModuleTree(json)) {
    const { value, diagnostics } = treeFromModuleJson(json, path);
    if (!value) return { value: undefined, diagnostics };
    return { value: { tree: value, config: null, moe: { blocks: [] }, source: { kind: 'module-tree-json', path } }, diagnostics };
  }
  return fromConfig(json, path, 'config', path);
}

function loadFolder(dir: string, host: ModelHost): Result<LoadedModel | undefined> {
  const configPath = `${dir}/config.json`;
  if (host.kind(configPath) !== 'file') {
    return fail(error('model-config-missing', `The folder "${dir}" has no config.json; quantc needs it to know the architecture (or pass a module-tree JSON).`));
  }
  const text = host.readText(configPath);
  if (isHostDiagnostic(text)) return fail(text);
  const loaded = fromConfigText(text, configPath, 'folder', configPath);
  if (!loaded.value) return loaded;
  const model = loaded.value;
  const stored = readCheckpoint(dir, host);
  if (!stored.value) return { value: { ...model, source: { kind: 'folder', path: dir } }, diagnostics: [...loaded.diagnostics, ...stored.diagnostics] };
  const { info, diagnostics } = crossCheck({
    tree: model.tree,
    moe: model.moe,
    modelType: model.tree.modelType ?? '',
    config: checkConfig(model.config!),
    tensors: stored.value.tensors,
    files: stored.value.files,
    where: dir,
  });
  return {
    value: { ...model, source: { kind: 'folder', path: dir }, checkpoint: info },
    diagnostics: [...loaded.diagnostics, ...stored.diagnostics, ...diagnostics],
  };
}

/** The config the cross-check reads (a multimodal config's text part holds the layer count). */
function checkConfig(config: Record<string, unknown>): Record<string, unknown> {
  const vlm = typeof config['model_type'] === 'string' ? VISION_LANGUAGE.get(config['model_type']) : undefined;
  if (vlm) return visionLanguageText(vlm, config);
  const text = config['text_config'];
  return config['model_type'] === 'llama4' && typeof text === 'object' && text !== null ? (text as Record<string, unknown>) : config;
}

/** Tensor names and shapes from the safetensors headers (and the shard index). */
function readCheckpoint(dir: string, host: ModelHost): Result<{ tensors: Map<string, StoredTensor>; files: string[] } | undefined> {
  const names = host.list(dir);
  const shards = names.filter((f) => f.endsWith('.safetensors')).sort();
  const hasIndex = names.includes(INDEX_FILE);
  if (shards.length === 0 && !hasIndex) return { value: undefined, diagnostics: [] };
  const diagnostics: Diagnostic[] = [];
  const tensors = new Map<string, StoredTensor>();
  const files: string[] = [];
  for (const shard of shards) {
    const path = `${dir}/${shard}`;
    const header = host.readSafetensorsHeader(path);
    const problem = isHostDiagnostic(header) ? header : parseSafetensorsHeader(path, header, tensors);
    if (problem) diagnostics.push(problem);
    else files.push(shard);
  }
  if (hasIndex) {
    const path = `${dir}/${INDEX_FILE}`;
    const text = host.readText(path);
    const index = isHostDiagnostic(text) ? { value: undefined, diagnostics: [text] } : parseIndex(path, text);
    diagnostics.push(...index.diagnostics);
    if (index.value) {
      const present = new Set(shards);
      const absent = new Set<string>();
      for (const [name, shard] of index.value) {
        if (tensors.has(name)) continue;
        if (!present.has(shard)) absent.add(shard);
        // Only the index names it: its shard is absent, so no shape to check.
        tensors.set(name, { dtype: '', shape: undefined });
      }
      files.push(INDEX_FILE);
      if (absent.size > 0) {
        diagnostics.push(
          warning(
            'checkpoint-shard-missing',
            `${absent.size} shard${absent.size === 1 ? '' : 's'} named by ${INDEX_FILE} in "${dir}" ${absent.size === 1 ? 'is' : 'are'} absent; tensor names were checked from the index, shapes were not.`,
          ),
        );
      }
    }
  }
  if (hasErrors(diagnostics)) return { value: undefined, diagnostics };
  return { value: { tensors, files }, diagnostics };
}

function fromConfigText(text: string, path: string, kind: ModelSourceKind, label: string): Result<LoadedModel | undefined> {
  const json = parseJson(text, path);
  if (isHostDiagnostic(json)) return fail(json);
  return fromConfig(json, path, kind, label);
}

function fromConfig(json: unknown, path: string, kind: ModelSourceKind, label: string): Result<LoadedModel | undefined> {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return fail(error('model-config-invalid', `"${path}" is neither a config.json object nor a module tree.`));
  }
  const config = json as Record<string, unknown>;
  const { value, diagnostics } = expandConfig(config, label);
  if (!value || hasErrors(diagnostics)) return { value: undefined, diagnostics };
  return { value: { tree: value.tree, config, moe: value.moe, source: { kind, path } }, diagnostics };
}

function parseJson(text: string, path: string): unknown {
  // NUL or undecodable bytes: a weights file or other binary passed as --model; JSON.parse would quote its bytes.
  if (/[\u0000\uFFFD]/.test(text)) {
    return error('model-config-invalid', `"${path}" is a binary file, not a config.json or module-tree JSON; pass the model folder or its config.json.`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    return error('model-config-invalid', `"${path}" is not valid JSON: ${(e as Error).message}.`);
  }
}

function fail(d: Diagnostic): Result<undefined> {
  return { value: undefined, diagnostics: [d] };
}
