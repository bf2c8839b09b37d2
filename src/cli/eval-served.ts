/**
 * The parts of `quantc eval` that run a checkpoint as served
 * (`--simulate activations`) and next to a baseline (`--baseline DIR`):
 * the comparability check of the two folders and the output lines saying
 * what was measured.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ComparableSide, ComparisonResult } from '../execute/calibrate/compare.js';
import type { Simulation, SimulationSummary } from '../execute/simulate/simulating-weights.js';

/** config.json and tokenizer.json of a model folder, for {@link incomparability}; null tokenizer when absent or unreadable. */
export function comparableSide(dir: string, label: string): ComparableSide {
  const read = (f: string): Record<string, unknown> | null => {
    const path = join(dir, f);
    if (!existsSync(path)) return null;
    try {
      return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    } catch {
      return null;
    }
  };
  return { label, config: read('config.json') ?? {}, tokenizer: read('tokenizer.json') };
}

/** Modules per description: `{ "FP8 dynamic per-token": 14 }`. */
function counts(m: ReadonlyMap<string, string>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const d of m.values()) out[d] = (out[d] ?? 0) + 1;
  return out;
}

/** What a run quantized, for `--format json`. */
export function simulatedJson(mode: Simulation, summary: SimulationSummary | null): Record<string, unknown> {
  if (mode === 'weights') return { simulate: mode };
  return { simulate: mode, simulated: { inputs: counts(summary?.inputs ?? new Map()), kvCache: counts(summary?.kvCache ?? new Map()) } };
}

/** The `quantized` line: weights only, or which activations and kv caches were fake-quantized too (`summary` null: the model has no quantization_config). */
export function simulatedLine(mode: Simulation, summary: SimulationSummary | null): string {
  const label = '  quantized    ';
  if (mode === 'weights') return `${label}weights only (activations and kv cache unquantized; --simulate activations for the served model)`;
  if (!summary) return `${label}nothing (the model has no quantization_config)`;
  const list = (m: ReadonlyMap<string, string>, what: string): string =>
    Object.entries(counts(m))
      .map(([d, n]) => `${n} ${what}${n === 1 ? '' : 's'}: ${d}`)
      .join('; ');
  const inputs = summary.inputs.size > 0 ? `, activations (${list(summary.inputs, 'Linear input')})` : ', no activations (none quantized by quantization_config)';
  const kv = summary.kvCache.size > 0 ? `, kv cache (${list(summary.kvCache, 'attention')})` : '';
  return `${label}weights${inputs}${kv}`;
}

/** The text lines of a comparison (after the first `perplexity:` line). */
export function comparisonLines(r: ComparisonResult, baselineLabel: string): string[] {
  return [
    `  baseline     ${r.baseline.perplexity.toFixed(4)} (mean NLL ${r.baseline.meanNll.toFixed(6)} nats) of ${baselineLabel}`,
    `  layer drift  ${r.layerDrift.map((d, i) => `${i}: ${d.toExponential(2)}`).join(', ')} (relative L2 of each layer's output against the baseline's)`,
  ];
}
