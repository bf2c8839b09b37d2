/**
 * Schema validation of a recipe document: each modifier's arguments against
 * its definition in `schemas/recipe.schema.json` (precompiled AJV
 * validators), with every AJV error mapped back through the SpanTable to the
 * exact key (unknown arguments) or value (wrong types and values).
 */
import { error, suggestion, type Diagnostic } from '../diagnostics.js';
import { pointer, spanFor, type RecipeDocument, type SpanTable } from '../parse/document.js';
import { MODIFIER_TYPES } from './modifiers.js';
import * as validators from './validators.generated.js';

interface AjvError {
  readonly instancePath: string;
  readonly keyword: string;
  readonly params: Record<string, unknown>;
  readonly data?: unknown;
  readonly parentSchema?: { properties?: Record<string, unknown>; enum?: unknown[] };
}

type Validator = ((data: unknown) => boolean) & { errors?: AjvError[] | null };

const VALIDATORS = validators as unknown as Record<string, Validator>;

/** The name of the innermost field at an instance path, for messages. */
function fieldName(instancePath: string, owner: string): string {
  const parts = instancePath.split('/').filter(Boolean);
  const last = parts[parts.length - 1];
  if (last === undefined) return owner;
  if (/^\d+$/.test(last)) return `${parts[parts.length - 2] ?? owner}[${last}]`;
  return last.replace(/~1/g, '/').replace(/~0/g, '~');
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  if (typeof value === 'number') return Number.isInteger(value) ? `the integer ${value}` : `the number ${value}`;
  return `${JSON.stringify(value)}`;
}

const TYPE_WORDS: Readonly<Record<string, string>> = {
  string: 'a string', integer: 'an integer', number: 'a number', boolean: 'true or false', array: 'a list', object: 'a mapping', null: 'null',
};

function typeList(types: unknown): string {
  const list = (Array.isArray(types) ? types : String(types).split(',')).map((t) => TYPE_WORDS[String(t)] ?? String(t));
  return list.length <= 1 ? list.join('') : `${list.slice(0, -1).join(', ')} or ${list[list.length - 1]}`;
}

function literal(v: unknown): string {
  return typeof v === 'string' ? `"${v}"` : String(v);
}

/** Arguments the old AWQModifier factory passed on to a quantization modifier; the YAML AWQModifier (a transform) has none. */
const QUANTIZATION_ARGS = new Set(['config_groups', 'targets', 'ignore', 'scheme', 'kv_cache_scheme', 'weight_observer', 'input_observer', 'output_observer', 'observer', 'bypass_divisibility_checks']);

/** Maps one AJV error under `base` (the pointer of the validated object) to a diagnostic. */
export function mapAjvError(e: AjvError, base: string, owner: string, spans: SpanTable): Diagnostic | undefined {
  const at = `${base}${e.instancePath}`;
  const field = fieldName(e.instancePath, owner);
  switch (e.keyword) {
    case 'additionalProperties': {
      const name = String(e.params.additionalProperty);
      const known = Object.keys(e.parentSchema?.properties ?? {});
      const where = e.instancePath === '' ? `"${owner}"` : `"${field}"`;
      const awq = owner === 'AWQModifier' && e.instancePath === '' && QUANTIZATION_ARGS.has(name);
      const hint = awq
        ? ' AWQModifier only rescales weights; put the quantization arguments in a QuantizationModifier or GPTQModifier after it.'
        : suggestion(name, known);
      return error('unknown-argument', `${where} has no argument "${name}".${hint}`, spanFor(spans, `${at}${pointer(name)}`, 'key'));
    }
    case 'required': {
      const node = e.instancePath === '' && base.endsWith('/args') ? base.slice(0, -'/args'.length) : at;
      return error('missing-argument', `"${e.instancePath === '' ? owner : field}" requires "${String(e.params.missingProperty)}".`, spanFor(spans, node, 'key'));
    }
    case 'type':
      return error('invalid-type', `"${field}" must be ${typeList(e.params.type)}, not ${describe(e.data)}.`, spanFor(spans, at));
    case 'enum': {
      const allowed = (e.params.allowedValues as unknown[]) ?? [];
      const hint = typeof e.data === 'string' ? suggestion(e.data, allowed.filter((a): a is string => typeof a === 'string')) : '';
      return error('invalid-value', `"${field}" must be one of ${allowed.map(literal).join(', ')}, not ${describe(e.data)}.${hint}`, spanFor(spans, at));
    }
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum': {
      const words: Record<string, string> = { minimum: 'at least', maximum: 'at most', exclusiveMinimum: 'greater than', exclusiveMaximum: 'less than' };
      return error('invalid-value', `"${field}" must be ${words[e.keyword]} ${String(e.params.limit)}, not ${describe(e.data)}.`, spanFor(spans, at));
    }
    case 'minItems':
    case 'maxItems':
      return error('invalid-value', `"${field}" must have ${e.keyword === 'minItems' ? 'at least' : 'at most'} ${String(e.params.limit)} items.`, spanFor(spans, at));
    case 'pattern':
      return error('invalid-value', `"${field}" has the wrong form: ${describe(e.data)}.`, spanFor(spans, at));
    case 'if':
      return undefined;
    default:
      return error('invalid-value', `"${field}" is not valid here (${e.keyword}).`, spanFor(spans, at));
  }
}

function run(name: string, data: unknown, base: string, owner: string, spans: SpanTable): Diagnostic[] {
  const validate = VALIDATORS[name]!;
  if (validate(data)) return [];
  const out: Diagnostic[] = [];
  for (const e of validate.errors ?? []) {
    const d = mapAjvError(e, base, owner, spans);
    if (d) out.push(d);
  }
  return out;
}

/** Schema diagnostics for the whole document: settings, modifier names, modifier arguments. */
export function validateSchema(document: RecipeDocument, spans: SpanTable): Diagnostic[] {
  const out: Diagnostic[] = [];
  if (document.recipe !== undefined) out.push(...run('RecipeHeader', document.recipe, pointer('recipe'), 'recipe', spans));
  if (document.moe !== undefined) out.push(...run('Moe', document.moe, pointer('moe'), 'moe', spans));
  document.stages.forEach((stage, s) =>
    stage.groups.forEach((group, g) =>
      group.modifiers.forEach((modifier, m) => {
        const ptr = pointer('stages', s, 'groups', g, 'modifiers', m);
        if (!(MODIFIER_TYPES as readonly string[]).includes(modifier.type)) {
          out.push(
            error(
              'unknown-modifier',
              `llm-compressor has no modifier "${modifier.type}".${suggestion(modifier.type, MODIFIER_TYPES)}`,
              spanFor(spans, `${ptr}/type`),
            ),
          );
          return;
        }
        out.push(...run(modifier.type, modifier.args, `${ptr}/args`, modifier.type, spans));
      }),
    ),
  );
  return out;
}
