/** Asserts `scheme` names preset schemes (case-insensitive), as a string or as the keys of a mapping. */
import { error, suggestion, type Diagnostic } from '../../diagnostics.js';
import { isRecord } from '../../ir/quant-args.js';
import { PRESET_NAMES, isPreset } from '../../ir/presets.js';
import { pointer } from '../../parse/document.js';
import { argSpan, type RuleContext } from '../context.js';
import { QUANTIZATION_MODIFIERS } from '../modifiers.js';

/** `preset_name_to_scheme` raises KeyError listing the available names. */
export function unknownPreset(ctx: RuleContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const m of ctx.modifiers) {
    if (!QUANTIZATION_MODIFIERS.has(m.type)) continue;
    const scheme = m.args.scheme;
    const names: [string, string, 'key' | 'value'][] = [];
    if (typeof scheme === 'string') names.push([scheme, '/scheme', 'value']);
    else if (isRecord(scheme)) for (const k of Object.keys(scheme)) names.push([k, `/scheme${pointer(k)}`, 'key']);
    for (const [name, path, prefer] of names) {
      if (isPreset(name)) continue;
      const hint = suggestion(name.toUpperCase(), PRESET_NAMES);
      out.push(
        error(
          'unknown-preset',
          `Unknown preset scheme name "${name.toUpperCase()}".${hint} Available names: ${PRESET_NAMES.join(', ')}.`,
          argSpan(ctx, m, path, prefer),
        ),
      );
    }
  }
  return out;
}
