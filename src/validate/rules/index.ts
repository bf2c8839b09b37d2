/**
 * Every semantic rule, run after the schema passes. Each lives in its own
 * file named after its diagnostic code.
 */
import type { Rule } from '../context.js';
import { activationActorder } from './activation-actorder.js';
import { activationStrategy } from './activation-strategy.js';
import { actorderGroupDeprecated } from './actorder-group-deprecated.js';
import { actorderStrategy } from './actorder-strategy.js';
import { awqWithoutQuantization } from './awq-without-quantization.js';
import { blockStructure } from './block-structure.js';
import { deprecatedModifier } from './deprecated-modifier.js';
import { duoScalingTensor } from './duo-scaling-tensor.js';
import { dynamicStrategy } from './dynamic-strategy.js';
import { gptqActorderConflict } from './gptq-actorder-conflict.js';
import { groupSizeMismatch } from './group-size-mismatch.js';
import { groupSizeStrategy } from './group-size-strategy.js';
import { kvCacheAsymmetric } from './kv-cache-asymmetric.js';
import { learnableUnsupported } from './learnable-unsupported.js';
import { moeCoverageUnused } from './moe-coverage-unused.js';
import { observerConflict } from './observer-conflict.js';
import { observerDict } from './observer-dict.js';
import { owlProfile } from './owl-profile.js';
import { quantizationFieldsMissing } from './quantization-fields-missing.js';
import { reapReportPath } from './reap-report-path.js';
import { reapSparsityRange } from './reap-sparsity-range.js';
import { schemeWithConfigGroups } from './scheme-with-config-groups.js';
import { smoothquantOneshot } from './smoothquant-oneshot.js';
import { tokenNeedsDynamic } from './token-needs-dynamic.js';
import { regexPatterns } from './regex-patterns.js';
import { unknownPreset } from './unknown-preset.js';

/** Rules in reporting order. */
export const RULES: readonly Rule[] = [
  unknownPreset,
  regexPatterns,
  schemeWithConfigGroups,
  quantizationFieldsMissing,
  observerDict,
  observerConflict,
  groupSizeStrategy,
  tokenNeedsDynamic,
  blockStructure,
  actorderStrategy,
  dynamicStrategy,
  activationStrategy,
  activationActorder,
  gptqActorderConflict,
  actorderGroupDeprecated,
  groupSizeMismatch,
  kvCacheAsymmetric,
  awqWithoutQuantization,
  duoScalingTensor,
  smoothquantOneshot,
  owlProfile,
  reapSparsityRange,
  reapReportPath,
  learnableUnsupported,
  deprecatedModifier,
  moeCoverageUnused,
];
