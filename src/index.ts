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
export type { ParsedRecipe, RecipeDocument, SpanTable } from './parse/document.js';
export { validateRecipe } from './validate/index.js';
export { buildIr } from './ir/build.js';
export type { RecipeIR, ModifierIR, QuantizationArgs, QuantizationScheme, ResolvedQuantization } from './ir/types.js';
export { presetScheme, PRESET_NAMES } from './ir/presets.js';
export { compileRecipe, type CompiledRecipe } from './compile.js';

export { printDsl, formatDsl } from './format/print-dsl.js';
export { exportYaml } from './export/yaml.js';
export { exportJson } from './export/json.js';

export { loadModel, type LoadedModel } from './model/load.js';
export type { ModuleTree, ClassInfo, ParamInfo } from './model/module-tree.js';

export { compilePatterns, type CompiledPattern } from './match/pattern.js';
export { matchNamedModules, assignSchemes } from './match/match.js';
export { runMatchLints } from './match/lints/index.js';
export { compressNames } from './match/compress-names.js';

export { resolveMoeRewrites, type MoeResolution } from './moe/resolve.js';
export { applyRewrites } from './moe/unpack.js';

export { lowerToPlan, type PlanBuild, type PlanRequest } from './plan/lower.js';
export { planRecipe } from './plan/plan-recipe.js';
export { explainModule } from './plan/explain.js';
export { diffPlans } from './plan/diff.js';
export type { Plan, PlanStep } from './plan/types.js';

export { renderDiagnostics, diagnosticToJson } from './report/diagnostics.js';
export { renderPlanText } from './report/plan-text.js';
export { renderPlanMarkdown } from './report/plan-markdown.js';

export { QUANTC_VERSION } from './version.js';
