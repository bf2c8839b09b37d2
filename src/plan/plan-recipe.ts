/**
 * The whole dry run as one call: compile the recipe, load the model (the
 * recipe's own `model` header when none is given), lower to a plan. Stops
 * after the first stage that reports an error, like `compileRecipe`.
 */
import { compileRecipe } from '../compile.js';
import { error, hasErrors, type Diagnostic } from '../diagnostics.js';
import type { RecipeIR } from '../ir/types.js';
import { loadModel, type LoadedModel } from '../model/load.js';
import type { ModelHost } from '../model/model-host.js';
import type { SourceHost } from '../source-host.js';
import { lowerToPlan, type PlanBuild } from './lower.js';
import { checkModelHeader } from './model-mismatch.js';

/** Everything a plan-producing command needs to print. */
export interface PlannedRecipe {
  /** Null when the recipe or the model failed to load, or no model was named. */
  readonly build: PlanBuild | null;
  /** The compiled recipe; null when it did not compile. */
  readonly ir: RecipeIR | null;
  readonly model: LoadedModel | null;
  readonly sources: ReadonlyMap<string, string>;
  readonly diagnostics: readonly Diagnostic[];
  /** True when the failure is unreadable input (CLI exit 2) rather than errors in it. */
  readonly unreadable: boolean;
}

/** Hosts for reading recipes and models. */
export interface PlanHosts {
  readonly source: SourceHost;
  readonly model?: ModelHost;
  /**
   * Resolves a `--model` argument: a relative path against the working
   * directory, a model id through the Hugging Face cache or Hub. A
   * diagnostic says why the model cannot be had (unreadable input).
   */
  readonly resolveModel?: (arg: string) => string | Promise<string | Diagnostic>;
}

const UNREADABLE_RECIPE = new Set(['file-unreadable', 'file-empty', 'file-binary', 'file-too-large']);
const UNREADABLE_MODEL = new Set(['model-not-found', 'model-file-unreadable', 'model-config-missing', 'unknown-model-id']);

/**
 * What quantization a model folder with weights declares in its config.json
 * (`compressed-tensors, pack-quantized`, `fp8`, …), or null. A config.json
 * alone (a dry run of a released config that ships FP8, say) is not checked.
 */
function quantizedCheckpoint(model: LoadedModel): string | null {
  if (model.source.kind !== 'folder' || !model.checkpoint) return null;
  const q = model.config?.quantization_config as { quant_method?: unknown; format?: unknown } | undefined;
  if (!q || typeof q !== 'object') return null;
  const method = typeof q.quant_method === 'string' ? q.quant_method : 'unknown method';
  return typeof q.format === 'string' ? `${method}, ${q.format}` : method;
}

/** Compiles `recipePath` and plans it against `modelArg` (or the recipe's `model` header). */
export async function planRecipe(recipePath: string, modelArg: string | undefined, hosts: PlanHosts, quantcVersion: string): Promise<PlannedRecipe> {
  const compiled = await compileRecipe(recipePath, hosts.source);
  const fail = (diagnostics: readonly Diagnostic[], unreadable: boolean, model: LoadedModel | null = null): PlannedRecipe => ({
    build: null,
    ir: compiled.ir,
    model,
    sources: compiled.sources,
    diagnostics,
    unreadable,
  });
  if (!compiled.ir || hasErrors(compiled.diagnostics)) {
    return fail(compiled.diagnostics, compiled.diagnostics.some((d) => UNREADABLE_RECIPE.has(d.code) && !d.span));
  }
  const target = modelArg ?? compiled.ir.model ?? undefined;
  if (target === undefined) {
    return fail(
      [...compiled.diagnostics, error('plan-no-model', `No model to plan against: pass --model PATH|MODEL_ID or add a \`model "org/name"\` line to the recipe.`)],
      true,
    );
  }
  const resolved = hosts.resolveModel ? await hosts.resolveModel(target) : target;
  if (typeof resolved !== 'string') return fail([...compiled.diagnostics, resolved], true);
  const loaded = loadModel(resolved, hosts.model);
  const diagnostics = [...compiled.diagnostics, ...loaded.diagnostics];
  if (!loaded.value || hasErrors(loaded.diagnostics)) {
    return fail(diagnostics, loaded.diagnostics.some((d) => UNREADABLE_MODEL.has(d.code) || d.code.startsWith('file-')), loaded.value ?? null);
  }
  const quantized = quantizedCheckpoint(loaded.value);
  if (quantized) {
    diagnostics.push(
      error(
        'model-already-quantized',
        `${target} is already quantized (${quantized}): its safetensors hold quantized codes, not the weights a recipe quantizes. Start from the unquantized checkpoint (or dequantize this one first).`,
      ),
    );
  }
  if (modelArg !== undefined) {
    diagnostics.push(...checkModelHeader(compiled.ir.model, modelArg, loaded.value.tree.modelType ?? '', compiled.spans.get('/recipe/model')?.value));
  }
  const lowered = lowerToPlan({
    recipePath,
    ir: compiled.ir,
    sources: compiled.sources,
    recipeDiagnostics: diagnostics,
    model: loaded.value,
    modelId: target,
    quantcVersion,
  });
  return { build: lowered.value, ir: compiled.ir, model: loaded.value, sources: compiled.sources, diagnostics: lowered.value.diagnostics, unreadable: false };
}
