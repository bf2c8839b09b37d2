/**
 * An ignore entry whose every match would not have received a scheme
 * anyway. Under transformers 5 most MoE routers are not `nn.Linear`, so the
 * ubiquitous `re:.*mlp.gate$` removes nothing, and a typo in it goes unseen.
 */
import { warning, type Diagnostic } from '../../diagnostics.js';
import { summarizeNames } from '../compress-names.js';
import { patternHits } from '../match-index.js';
import { hitModules, type LintContext } from './context.js';

/** Warns for ignore entries that match modules, none of which a target would have given a scheme. */
export function ignoreWithoutEffect(ctx: LintContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const pattern of ctx.ignore) {
    const hits = hitModules(ctx, pattern);
    if (hits.length === 0 || hits.some((m) => ctx.schemeable[m] === 1)) continue;
    const names = summarizeNames(hits.map((m) => ctx.tree.names[m]!));
    const classes = [...new Set(hits.map((m) => ctx.tree.classes[ctx.tree.classIds[m]!]!.name))];
    const targetBits = ctx.targets.map((t) => patternHits(ctx.index, t).bits);
    const targeted = hits.some((m) => targetBits.some((b) => b[m] !== 0));
    const classList = classes.map((c) => `"${c}"`).join(', ');
    const notQuantizable = `${hits.length === 1 ? 'it is' : 'they are'} ${classList}, not ${hits.length === 1 ? 'an nn.Linear or nn.Embedding subclass' : 'nn.Linear or nn.Embedding subclasses'}`;
    const why = targeted
      ? `${hits.length === 1 ? 'it would not' : 'none of them would'} receive a scheme: ${notQuantizable}, and only those (and attention modules) are quantized`
      : hits.some((m) => ctx.tree.classes[ctx.tree.classIds[m]!]!.mro.some((c) => c === 'Linear' || c === 'Embedding'))
        ? `no target matches ${hits.length === 1 ? 'it' : 'them'}`
        : `no target matches ${hits.length === 1 ? 'it' : 'them'} (${notQuantizable})`;
    out.push(
      warning(
        'ignore-without-effect',
        `The ignore entry "${pattern.text}" changes nothing: it matches ${hits.length} module${hits.length === 1 ? '' : 's'} (${names}), but ${why}.`,
        pattern.origin,
      ),
    );
  }
  return out;
}

