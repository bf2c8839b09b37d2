/**
 * quantc's public API: each pipeline stage can be called alone, and the
 * orchestrators (`compileRecipe`, `planRecipe`) chain them the way the CLI
 * does. Every stage returns its value with diagnostics as data.
 *
 * @packageDocumentation
 */
export type { Diagnostic, DiagnosticNote, Result, Severity } from './diagnostics.js';
export type { Source, Span } from './source.js';
export { nodeSourceHost, memorySourceHost, type SourceHost } from './source-host.js';

export { parseRecipeFile, parseRecipeSource } from './parse/index.js';
export type { ParsedRecipe, RecipeDocument, SpanTable, MoeDocument, NodeSpans, RecipeHeader, StageDocument } from './parse/document.js';
export { validateRecipe } from './validate/index.js';
export { buildIr } from './ir/build.js';
export type {
  RecipeIR,
  ModifierIR,
  ModifierType,
  MoeSettings,
  ConfigGroup,
  PatternRef,
  QuantizationArgs,
  QuantizationScheme,
  QuantizationStrategy,
  ResolvedQuantization,
} from './ir/types.js';
export { presetScheme, PRESET_NAMES } from './ir/presets.js';
export { compileRecipe, type CompiledRecipe } from './compile.js';

export { printDsl, formatDsl } from './format/print-dsl.js';
export { exportYaml } from './export/yaml.js';
export { exportJson } from './export/json.js';

export { loadModel, type LoadedModel, type ModelSourceKind } from './model/load.js';
export { resolveModelRef, type ModelFiles, type ResolvedModel, type ResolveOptions } from './model/resolve-model-ref.js';
export { parseModelRef, hubCacheDir, type ModelRef, type HubEnv } from './model/hf-cache.js';
export { HubError, type HubErrorCode } from './model/hub-client.js';
export type { ModelHost } from './model/model-host.js';
export type { CheckpointInfo } from './model/checkpoint.js';
export type { MoeFacts } from './model/moe-facts.js';
export type { ModuleTree, ClassInfo, ParamInfo, TreeOrigin } from './model/module-tree.js';

export { compilePatterns, type CompiledPattern } from './match/pattern.js';
export { matchNamedModules, assignSchemes, type NamedModulesMatch, type SchemeAssignment, type SchemeGroup } from './match/match.js';
export { runMatchLints } from './match/lints/index.js';
export { compressNames, type CompressOptions, type NameGroup } from './match/compress-names.js';

export { resolveMoeRewrites, type MoeResolution, type ResolvedRewrite, type UnsupportedMoe } from './moe/resolve.js';
export { applyRewrites } from './moe/unpack.js';

export { lowerToPlan, type PlanBuild, type PlanRequest, type ModifierMatch } from './plan/lower.js';
export { planRecipe, type PlanHosts, type PlannedRecipe } from './plan/plan-recipe.js';
export { explainModule, type Explanation } from './plan/explain.js';
export { diffPlans, type PlanDiff } from './plan/diff.js';
export type {
  Plan,
  PlanStep,
  PlanDiagnostic,
  PlanExpertCoverage,
  PlanIgnored,
  PlanQuantize,
  PlanReason,
  PlanRewrite,
  PlanScheme,
  PlanSummary,
  StepAction,
  StepEstimate,
} from './plan/types.js';

export { renderDiagnostics, diagnosticToJson, type DiagnosticJson, type SourceMap } from './report/diagnostics.js';
export { renderPlanText } from './report/plan-text.js';
export { renderPlanMarkdown } from './report/plan-markdown.js';

// Execution: onnxruntime-node is loaded only when a graph first runs.
export { applyJob, ApplyError } from './execute/apply.js';
export { jobFromPlan, PlanNotExecutableError } from './execute/from-plan.js';
export type { ApplyJob, ApplySummary } from './execute/types.js';
export { ForwardModel } from './execute/forward/executor.js';
export { UnsupportedModelError } from './execute/forward/decoder-config.js';
export { calibrate, CUDA_RUN_TOKENS, joinBatches, type CalibrationResult } from './execute/calibrate/calibrate.js';
export type { ExpertCoverage, LayerCoverage } from './execute/calibrate/coverage.js';
export { calibrateJob, ExpertCoverageError, joinedRunTokens, joinsBatches, MissingStatisticsError, readsLastBatch } from './execute/calibrate/calibrate-job.js';
export { calibrationSamples } from './execute/calibrate/calibration-data.js';
export { readCalibrationData, type CalibrationData, type ChatRecord, type DataRecord } from './execute/calibrate/dataset-file.js';
export { numpyPermutation } from './execute/calibrate/numpy-permutation.js';
export { loadChatTemplate, ChatTemplateError, type ChatTemplate } from './execute/tokenize/chat-template.js';
export { perplexity } from './execute/calibrate/perplexity.js';
export { gptqJob, type GptqRun } from './execute/gptq/gptq-job.js';
export { smoothJob, type SmoothRun } from './execute/smoothquant/smoothquant-job.js';
export { runSequential, type LayerModifier, type LayerTimings, type SequentialOptions } from './execute/pipeline/sequential.js';

// Types the API above refers to.
export type { CalibratedJob } from './execute/calibrate/calibrate-job.js';
export type { CalibrateOptions } from './execute/calibrate/calibrate.js';
export type { CalibrationSamples, SampleOptions } from './execute/calibrate/calibration-data.js';
export type { LowExpert } from './execute/calibrate/expert-coverage.js';
export type { MinMax } from './execute/calibrate/observers.js';
export type { PerplexityResult } from './execute/calibrate/perplexity.js';
export type { TextRecords } from './execute/calibrate/text-data.js';
export type { SafetensorsDtype } from './execute/dtypes.js';
export type { DecoderConfig, RopeConfig } from './execute/forward/decoder-config.js';
export type { DenseMatrix } from './execute/forward/dequantize.js';
export type { ForwardTimings, HiddenBatch, LayerObserver, RunOptions, TokenBatch } from './execute/forward/executor.js';
export type { HeadOutput } from './execute/forward/head.js';
export type { ExpertObservation } from './execute/forward/observe.js';
export type { Bf16Matrix } from './execute/forward/ops.js';
export type { RowReader, WeightReader } from './execute/forward/weights.js';
export type { JobOptions } from './execute/from-plan.js';
export type { Device, Feed, RawTensor } from './execute/runtime.js';
export type { LowPrecision, Precision, ResolvedPrecision } from './execute/forward/precision.js';
export type { CheckpointIndex, TensorEntry } from './execute/safetensors-reader.js';
export type { TextTokenizer } from './execute/tokenize/tokenizer.js';
export type { ApplyEvent, ApplyGroup, ApplyModule, CalibrationSpec, ExtraTensor, FusedExpertsParam, GptqSpec, SmoothSpec, SolvedWeight, StatisticsPass } from './execute/types.js';
export type { FileBytes } from './execute/onnx/graph-builder.js';
export type { ActivationOrdering } from './ir/types.js';
export type { Observation, ObserveOption } from './execute/forward/observe.js';
export type { LayerInputsFor, OutputSink, PositionTables } from './execute/forward/executor.js';
export type { BatchShape, HiddenStack, StackDtype } from './execute/forward/layer-loop.js';
export type { GptqModuleReport } from './execute/gptq/gptq-modifier.js';
export type { SmoothReport } from './execute/smoothquant/smoothquant-modifier.js';
export type { SmoothMapping } from './match/smoothquant-mappings.js';
export type { ScaleLayout, WeightQparams } from './execute/gptq/weight-qparams.js';
export type { KernelKind } from './execute/rtn/weight-kernel.js';
export type { WeightChanges } from './execute/pipeline/overlay-weights.js';
export type { MoeRewriteDecl } from './ir/types.js';
export type { IgnoredModule, ModuleSchemes } from './match/match.js';
export type { ExpertStorage } from './model/checkpoint.js';
export type { ExpertLinearShape, ExpertsImplementation, MoeBlockFacts } from './model/moe-facts.js';
export type { CatalogEntry, ExpertsFacts, LlmCompressorFacts, MoeConfigKeys } from './moe/catalog.js';
export type { DetectedExperts, DetectedLayout, DetectedRouter } from './moe/detect.js';
export type { ExpertLinear, ExpertShape } from './moe/expert-linears.js';
export type { ExpertsLayout, FusedLayout, LegacyWrapper, LinearExpertsClass, ModuleListLayout, RewriteKind, RouterFacts, RouterKind, TopkNormalisation } from './moe/types.js';
export type { GroupDocument, LowCoveragePolicy, ModifierDocument, MoeRewriteDocument, UnsupportedMoePolicy } from './parse/document.js';
export type { PlanChange } from './plan/diff.js';
export type { ModifierVerdict, PatternHit } from './plan/explain.js';
export type { PlanSpan } from './plan/types.js';
export type { StageRun } from './execute/pipeline/stage-run.js';
export type { AwqSpec } from './execute/types.js';
export type { AwqMapping } from './match/awq-mappings.js';
export type { DeviceSlot } from './execute/device-list.js';
export type { PartSpec } from './execute/parts.js';
export type { StoredName } from './model/stored-names.js';
export type { LanguageModelNames } from './execute/forward/weights.js';
export type { AwqRole } from './plan/explain.js';
export { MINIMUM_SMOOTHING_SCALE } from './execute/smoothquant/smoothquant-modifier.js';

export { QUANTC_VERSION } from './version.js';
