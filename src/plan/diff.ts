/**
 * What changes between two plans of the same model: modules that start or
 * stop being quantized, change scheme, or change ignore pattern. Schemes are
 * compared by content, so renumbered config groups are not a change.
 */
import type { Plan, PlanScheme } from './types.js';

/** One kind of change and the modules it applies to. */
export interface PlanChange {
  readonly kind: 'added' | 'removed' | 'scheme-changed' | 'now-ignored' | 'no-longer-ignored';
  /** Scheme labels before and after (preset name, else the scheme key). */
  readonly before: string | null;
  readonly after: string | null;
  readonly modules: readonly string[];
}

/** The difference between two plans. */
export interface PlanDiff {
  readonly changes: readonly PlanChange[];
  readonly changed: number;
}

/** Compares `before` and `after`; changes are grouped by kind and scheme pair, modules in order. */
export function diffPlans(before: Plan, after: Plan): PlanDiff {
  const a = schemeByModule(before);
  const b = schemeByModule(after);
  const ia = new Map(before.ignored.map((i) => [i.module, i.pattern]));
  const ib = new Map(after.ignored.map((i) => [i.module, i.pattern]));
  const groups = new Map<string, { kind: PlanChange['kind']; before: string | null; after: string | null; modules: string[] }>();
  const add = (kind: PlanChange['kind'], x: string | null, y: string | null, module: string) => {
    const key = `${kind}\u0000${x}\u0000${y}`;
    const g = groups.get(key) ?? { kind, before: x, after: y, modules: [] };
    g.modules.push(module);
    groups.set(key, g);
  };
  const order = [...new Set([...a.keys(), ...b.keys(), ...ia.keys(), ...ib.keys()])];
  for (const module of order) {
    const x = a.get(module);
    const y = b.get(module);
    if (x && !y) add('removed', x.label, null, module);
    else if (!x && y) add('added', null, y.label, module);
    else if (x && y && x.json !== y.json) add('scheme-changed', x.label, y.label, module);
    const px = ia.get(module);
    const py = ib.get(module);
    if (py !== undefined && px === undefined) add('now-ignored', null, py, module);
    else if (px !== undefined && py === undefined) add('no-longer-ignored', px, null, module);
  }
  const changes = [...groups.values()];
  return { changes, changed: new Set(changes.flatMap((c) => c.modules)).size };
}

function schemeByModule(plan: Plan): Map<string, { label: string; json: string }> {
  const labels = new Map<string, { label: string; json: string }>();
  for (const [key, s] of Object.entries(plan.schemes)) labels.set(key, { label: s.preset ?? key, json: schemeContent(s) });
  return new Map(plan.quantize.map((q) => [q.module, labels.get(q.scheme)!]));
}

/** The scheme's quantization content: args and format, without bookkeeping fields. */
function schemeContent(s: PlanScheme): string {
  return JSON.stringify([s.weights, s.input_activations, s.output_activations, s.savedFormat]);
}
