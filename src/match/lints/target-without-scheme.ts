/**
 * A target that matches modules which receive no scheme: compressed-tensors
 * attaches schemes only to `nn.Linear` / `nn.Embedding` subclasses (and to
 * attention modules for activation or kv-cache quantization) and passes over
 * the rest — MoE blocks, fused expert containers, routers that are not
 * Linear — without a word, so a target written for them quantizes nothing there.
 */
import { warning, type Diagnostic } from '../../diagnostics.js';
import { compressNames } from '../compress-names.js';
import type { LintContext } from './context.js';

/** Warns once per target whose matches include modules that get no scheme, naming them and their classes. */
export function targetWithoutScheme(ctx: LintContext): Diagnostic[] {
  const skipped = ctx.assignment.skipped;
  const byTarget = new Map<number, number[]>();
  for (let k = 0; k < skipped.modules.length; k++) {
    const t = skipped.targets[k]!;
    const list = byTarget.get(t);
    if (list) list.push(skipped.modules[k]!);
    else byTarget.set(t, [skipped.modules[k]!]);
  }
  const out: Diagnostic[] = [];
  for (const [t, modules] of byTarget) {
    const pattern = ctx.assignment.targets[t]!.pattern;
    const className = (i: number): string => ctx.tree.classes[ctx.tree.classIds[modules[i]!]!]!.name;
    // Grouped by class, so each pattern names one class: `model.layers.{1..46}.mlp.experts.{0..63} (ExpertMLPWithGate)`.
    const groups = compressNames(modules.map((m) => ctx.tree.names[m]!), className);
    const shown = groups.slice(0, 3).map((g) => `${g.pattern} (${g.key})`);
    const rest = groups.slice(3).reduce((s, g) => s + g.count, 0);
    const names = rest > 0 ? `${shown.join(', ')}, and ${rest} more` : shown.join(', ');
    const n = modules.length;
    out.push(
      warning(
        'target-without-scheme',
        `The target "${pattern.text}" matches ${n.toLocaleString('en-US')} module${n === 1 ? '' : 's'} that receive${n === 1 ? 's' : ''} no scheme: ${names}. Only nn.Linear and nn.Embedding subclasses (and attention modules, for activation or kv-cache schemes) are quantized, and compressed-tensors passes over the rest without a word.`,
        pattern.origin,
      ),
    );
  }
  return out;
}
