/**
 * Cross-checks the tensors a checkpoint stores (names and shapes from
 * safetensors headers, or names only from the shard index) against the
 * parameters of the tree expanded from config.json.
 *
 * Checkpoints often differ from the in-memory model in known ways, which
 * are accepted rather than reported: experts stored per expert
 * (`experts.<i>.gate_proj.weight`, Mixtral's `w1/w2/w3`) while transformers
 * 5 fuses them into `experts.gate_up_proj`; checkpoint names transformers
 * renames on load (`block_sparse_moe` → `mlp`, GraniteMoE's
 * `input_linear`); quantization side tensors (`weight_scale`, …); extra
 * multi-token-prediction layers beyond `num_hidden_layers`; buffers.
 */
import { error, warning, type Diagnostic } from '../diagnostics.js';
import { VISION_LANGUAGE } from './architectures/vision-language.js';
import { treeSize, type ModuleTree } from './module-tree.js';
import type { MoeFacts } from './moe-facts.js';
import type { StoredTensor } from './safetensors.js';

/** How the checkpoint stores routed experts. */
export type ExpertStorage = 'fused' | 'per-expert' | 'mixed';

/** What the cross-check learned about a checkpoint. */
export interface CheckpointInfo {
  /** Files whose headers were read (or the index, when shards are absent). */
  readonly files: readonly string[];
  readonly tensors: number;
  /** Routed-expert storage; undefined for dense models. */
  readonly expertStorage: ExpertStorage | undefined;
  /** Tensors stored per safetensors dtype, e.g. `{ BF16: 291 }`. */
  readonly dtypes: Readonly<Record<string, number>>;
  /** Quantization side tensors (scales, zero points) seen. */
  readonly auxiliaryTensors: number;
  /** Tensors of layers at or beyond `num_hidden_layers` (multi-token prediction), which transformers does not load. */
  readonly extraLayerTensors: number;
  /** One line for humans, e.g. `2 safetensors files, 291 tensors, experts stored per expert (transformers fuses them on load)`. */
  readonly summary: string;
}

/** transformers' `llava` conversion mapping (Llava-layout models as published and as save_pretrained writes them). */
const LLAVA_RENAMES: readonly (readonly [RegExp, string])[] = [
  [/^language_model\.lm_head\./, 'lm_head.'],
  [/^language_model\.model\./, 'model.language_model.'],
  [/^vision_tower\./, 'model.vision_tower.'],
  [/^multi_modal_projector\./, 'model.multi_modal_projector.'],
];

/** transformers' `Qwen2VLForConditionalGeneration` conversion mapping (Qwen2-VL, Qwen2.5-VL). */
const QWEN2_VL_RENAMES: readonly (readonly [RegExp, string])[] = [
  [/^visual\./, 'model.visual.'],
  [/^model\.(?!language_model\.|visual\.)/, 'model.language_model.'],
];

/** Checkpoint-name → in-memory-name rewrites transformers applies on load, per model type. */
const RENAMES: Readonly<Record<string, readonly (readonly [RegExp, string])[]>> = {
  mixtral: perExpertW123('mlp'),
  phimoe: [...perExpertW123('mlp'), [/\.mlp\.gate\.weight$/, '.mlp.router.weight']],
  granitemoe: [
    [/\.block_sparse_moe\.input_linear\.weight$/, '.block_sparse_moe.experts.gate_up_proj'],
    [/\.block_sparse_moe\.output_linear\.weight$/, '.block_sparse_moe.experts.down_proj'],
    [/\.block_sparse_moe\.router\.layer\.weight$/, '.block_sparse_moe.router.weight'],
  ],
  llama4_text: [[/^language_model\./, '']],
  // Vision-language models, by the conversion mapping their class has.
  ...Object.fromEntries(
    [...VISION_LANGUAGE.values()].filter((v) => v.stored !== 'as-built').map((v) => [v.modelType, v.stored === 'llava' ? LLAVA_RENAMES : QWEN2_VL_RENAMES]),
  ),
};

/**
 * Model types whose conversion mapping transposes fused experts on load when
 * their stored shape is the parameter's with the last two dimensions swapped
 * (`Transpose(1, 2, check_dims=True)`: published Qwen3-VL-MoE checkpoints
 * store `gate_up_proj [E, H, 2I]`, `down_proj [E, I, H]`).
 */
const TRANSPOSED_FUSED: ReadonlySet<string> = new Set(['qwen3_vl_moe']);

function perExpertW123(block: string): (readonly [RegExp, string])[] {
  return [
    [/\.block_sparse_moe\./, `.${block}.`],
    [/\.experts\.(\d+)\.w1\./, '.experts.$1.gate_proj.'],
    [/\.experts\.(\d+)\.w3\./, '.experts.$1.up_proj.'],
    [/\.experts\.(\d+)\.w2\./, '.experts.$1.down_proj.'],
  ];
}

/** Quantization side tensors (last name component): not parameters of the unquantized model. */
const AUXILIARY = new Set([
  'weight_scale',
  'weight_scale_inv',
  'weight_zero_point',
  'weight_global_scale',
  'weight_shape',
  'input_scale',
  'input_global_scale',
  'input_zero_point',
  'output_scale',
  'k_scale',
  'v_scale',
]);
/** Packed quantized weights stand in for the parameter they encode. */
const PACKED = /(?:\.weight_packed|_blocks)$/;
/** Buffers some checkpoints store but named_parameters() does not list. */
const BUFFER = /\.(?:inv_freq|e_score_correction_bias)$/;
/** Parts of a multimodal checkpoint a causal-LM tree does not hold (a `…ForConditionalGeneration` tree holds them). */
const OTHER_TOWER = /^(?:vision_model|vision_tower|multi_modal_projector|model\.visual|visual)\./;
/** `<i>.<projection>.<weight|bias>` after an experts container's name. */
const PER_EXPERT = /^(\d+)\.(\w+)\.(weight|bias)$/;
const LAYER = /^(?:language_model\.)?model\.(?:language_model\.)?layers\.(\d+)\./;

/** Most names listed in one diagnostic. */
const LIST_LIMIT = 5;

/** Inputs of a cross-check. */
export interface CrossCheckInput {
  readonly tree: ModuleTree;
  readonly moe: MoeFacts;
  readonly modelType: string;
  readonly config: Readonly<Record<string, unknown>>;
  readonly tensors: ReadonlyMap<string, StoredTensor>;
  readonly files: readonly string[];
  /** Where the check happened, for messages (the model folder). */
  readonly where: string;
}

/** Compares stored tensors with the tree's parameters. */
export function crossCheck(input: CrossCheckInput): { info: CheckpointInfo; diagnostics: Diagnostic[] } {
  const { tree, moe, tensors, where } = input;
  const expected = new Map<string, readonly number[]>();
  for (let i = 0; i < treeSize(tree); i++) {
    const prefix = tree.names[i] === '' ? '' : `${tree.names[i]}.`;
    for (let p = tree.paramStart[i]!; p < tree.paramStart[i + 1]!; p++) expected.set(prefix + tree.params[p]!.name, tree.params[p]!.shape);
  }
  const experts = new Map<string, { facts: MoeFacts['blocks'][number]; seen: Set<number> }>();
  for (const b of moe.blocks) experts.set(tree.names[b.experts]!, { facts: b, seen: new Set() });

  const renames = RENAMES[input.modelType] ?? [];
  const layers = typeof input.config['num_hidden_layers'] === 'number' ? (input.config['num_hidden_layers'] as number) : Infinity;
  const tied = input.config['tie_word_embeddings'] === true;
  const found = new Set<string>();
  const unexpected: string[] = [];
  const mismatches: string[] = [];
  const dtypes: Record<string, number> = {};
  let auxiliary = 0;
  let extraLayers = 0;
  let fused = false;
  let perExpert = false;

  for (const [stored, t] of tensors) {
    if (t.dtype) dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + 1;
    let name = stored;
    if (!expected.has(name)) for (const [re, to] of renames) name = name.replace(re, to);
    const layer = LAYER.exec(name);
    if (layer && Number(layer[1]) >= layers) {
      extraLayers++;
      continue;
    }
    if (isAuxiliary(name)) {
      auxiliary++;
      continue;
    }
    if (BUFFER.test(name) || (OTHER_TOWER.test(name) && !expected.has(name)) || (tied && /^(?:language_model\.)?lm_head\.weight$/.test(name))) continue;
    const packed = PACKED.test(name);
    if (packed) name = name.replace(/\.weight_packed$/, '.weight').replace(/_blocks$/, '');
    const want = expected.get(name);
    if (want) {
      found.add(name);
      const isFused = experts.has(name.slice(0, name.lastIndexOf('.')));
      if (isFused) fused = true;
      if (isFused && TRANSPOSED_FUSED.has(input.modelType) && t.shape && sameShape(t.shape, [want[0]!, want[2]!, want[1]!])) continue;
      if (!packed && t.shape && !sameShape(t.shape, want)) mismatches.push(`"${stored}" is ${fmt(t.shape)} in the checkpoint but ${fmt(want)} in the model`);
      continue;
    }
    const at = name.lastIndexOf('.experts.');
    const group = at < 0 ? undefined : experts.get(name.slice(0, at + '.experts'.length));
    const pe = group ? PER_EXPERT.exec(name.slice(at + '.experts.'.length)) : null;
    if (pe && group) {
      const linear = group.facts.expertLinears.find((l) => l.name === pe[2]);
      if (linear) {
        perExpert = true;
        group.seen.add(Number(pe[1]));
        const want2 = pe[3] === 'weight' ? linear.shape : [linear.shape[0]];
        if (!packed && t.shape && !sameShape(t.shape, want2)) mismatches.push(`"${stored}" is ${fmt(t.shape)} in the checkpoint but each expert's ${linear.name} is ${fmt(want2)} in the model`);
        continue;
      }
    }
    unexpected.push(stored);
  }

  for (const [name, g] of experts) {
    if (g.seen.size === 0) continue;
    const max = Math.max(...g.seen) + 1;
    if (g.seen.size !== g.facts.numExperts || max !== g.facts.numExperts) {
      mismatches.push(`"${name}" stores ${g.seen.size} experts in the checkpoint but the config says ${g.facts.numExperts}`);
    }
    const prefix = `${name}.`;
    for (const key of expected.keys()) if (key.startsWith(prefix) && key.indexOf('.', prefix.length) < 0) found.add(key);
  }
  const missing = [...expected.keys()].filter((k) => !found.has(k));

  const diagnostics: Diagnostic[] = [];
  if (mismatches.length > 0) {
    diagnostics.push(error('checkpoint-shape-mismatch', `The checkpoint in "${where}" disagrees with config.json: ${listed(mismatches)}.`));
  }
  if (missing.length > 0) {
    diagnostics.push(
      warning('checkpoint-missing-tensor', `${missing.length} parameter${missing.length === 1 ? '' : 's'} of the model ${missing.length === 1 ? 'is' : 'are'} not in the checkpoint in "${where}": ${listed(missing.map((m) => `"${m}"`))}.`),
    );
  }
  if (unexpected.length > 0) {
    diagnostics.push(
      warning('checkpoint-unexpected-tensor', `${unexpected.length} tensor${unexpected.length === 1 ? '' : 's'} in the checkpoint in "${where}" ${unexpected.length === 1 ? 'matches' : 'match'} no parameter of the model: ${listed(unexpected.map((u) => `"${u}"`))}.`),
    );
  }
  const expertStorage: ExpertStorage | undefined = fused && perExpert ? 'mixed' : fused ? 'fused' : perExpert ? 'per-expert' : undefined;
  const info: CheckpointInfo = {
    files: input.files,
    tensors: tensors.size,
    expertStorage,
    dtypes,
    auxiliaryTensors: auxiliary,
    extraLayerTensors: extraLayers,
    summary: summarize(input.files, tensors.size, expertStorage, auxiliary, extraLayers),
  };
  return { info, diagnostics };
}

/** A scale or zero point beside a quantized weight (gpt-oss MXFP4: `gate_up_proj_scales`). */
function isAuxiliary(name: string): boolean {
  return AUXILIARY.has(name.slice(name.lastIndexOf('.') + 1)) || name.endsWith('_scales');
}

function summarize(files: readonly string[], tensors: number, storage: ExpertStorage | undefined, aux: number, extra: number): string {
  const parts = [`${files.length} file${files.length === 1 ? '' : 's'}`, `${tensors} tensors`];
  if (storage === 'per-expert') parts.push('experts stored per expert (transformers fuses them on load)');
  else if (storage === 'fused') parts.push('experts stored fused, as in memory');
  else if (storage === 'mixed') parts.push('experts stored partly fused, partly per expert');
  if (aux > 0) parts.push(`${aux} quantization side tensors`);
  if (extra > 0) parts.push(`${extra} tensors of extra layers beyond num_hidden_layers (not loaded by transformers)`);
  return parts.join(', ');
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function fmt(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

function listed(items: readonly string[]): string {
  const head = items.slice(0, LIST_LIMIT).join(', ');
  return items.length > LIST_LIMIT ? `${head} and ${items.length - LIST_LIMIT} more` : head;
}
