/**
 * JSON read and written the way Python's `json` module writes config files
 * (`indent=2, sort_keys=True`, ASCII escapes). Number literals keep their
 * source text, so `10000.0` and `1e-05` survive a round trip unchanged.
 */

/** A number kept as its literal text. */
export class PyNumber {
  constructor(readonly raw: string) {}
  /** Its numeric value. */
  get value(): number {
    return Number(this.raw);
  }
}

/** A JSON value with literal-preserving numbers. */
export type PyJson = null | boolean | string | PyNumber | PyJson[] | { [key: string]: PyJson };

/** Parses JSON text, keeping number literals verbatim. */
export function parsePyJson(text: string): PyJson {
  let i = 0;
  const ws = (): void => {
    while (i < text.length && ' \t\n\r'.includes(text[i])) i++;
  };
  const fail = (): never => {
    throw new SyntaxError(`invalid JSON at offset ${i}`);
  };
  const value = (): PyJson => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const obj: { [key: string]: PyJson } = {};
      ws();
      if (text[i] === '}') {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        const k = value();
        if (typeof k !== 'string') fail();
        ws();
        if (text[i++] !== ':') fail();
        obj[k as string] = value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === '}') {
          i++;
          return obj;
        } else fail();
      }
    }
    if (c === '[') {
      i++;
      const arr: PyJson[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value());
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === ']') {
          i++;
          return arr;
        } else fail();
      }
    }
    if (c === '"') {
      const start = i;
      i++;
      while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
      i++;
      return JSON.parse(text.slice(start, i)) as string;
    }
    for (const [word, v] of [
      ['true', true],
      ['false', false],
      ['null', null],
      ['NaN', new PyNumber('NaN')],
      ['Infinity', new PyNumber('Infinity')],
      ['-Infinity', new PyNumber('-Infinity')],
    ] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    const m = /^-?\d+(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 64));
    if (!m) fail();
    i += m![0].length;
    return new PyNumber(m![0]);
  };
  const v = value();
  ws();
  if (i !== text.length) fail();
  return v;
}

function pyString(s: string): string {
  let out = '"';
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    const ch = s[k];
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\f') out += '\\f';
    else if (c < 0x20 || c > 0x7e) out += c === 0x7f ? ch : '\\u' + c.toString(16).padStart(4, '0');
    else out += ch;
  }
  return out + '"';
}

/** Converts plain JS data (numbers, arrays, objects) to {@link PyJson}. */
export function toPyJson(v: unknown): PyJson {
  if (v === null || v === undefined) return null;
  if (v instanceof PyNumber) return v;
  if (typeof v === 'number') return new PyNumber(Number.isInteger(v) ? String(v) : String(v));
  if (typeof v === 'boolean' || typeof v === 'string') return v;
  if (Array.isArray(v)) return v.map(toPyJson);
  const out: { [key: string]: PyJson } = {};
  for (const [k, x] of Object.entries(v as object)) out[k] = toPyJson(x);
  return out;
}

/** Python `json.dumps(v, indent=2, sort_keys=True)`. */
export function dumpPyJson(v: PyJson, indent = 0): string {
  const pad = ' '.repeat(indent + 2);
  const end = ' '.repeat(indent);
  if (v === null) return 'null';
  if (v === true) return 'true';
  if (v === false) return 'false';
  if (typeof v === 'string') return pyString(v);
  if (v instanceof PyNumber) return v.raw;
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    return '[\n' + v.map((x) => pad + dumpPyJson(x, indent + 2)).join(',\n') + '\n' + end + ']';
  }
  const keys = Object.keys(v).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (keys.length === 0) return '{}';
  return '{\n' + keys.map((k) => pad + pyString(k) + ': ' + dumpPyJson(v[k], indent + 2)).join(',\n') + '\n' + end + '}';
}
