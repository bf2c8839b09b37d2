/**
 * The canonical `.qr` printer. One layout for every input: `quantc fmt`
 * prints a parsed file with its comments; `printDsl` prints a
 * RecipeDocument (e.g. exported from YAML). Output is stable under
 * re-formatting: printing a parse of the output gives the output again.
 *
 * Layout: two-space indent; one entry per line; no column alignment (so
 * adding a longer key never re-indents its neighbours in a diff); lists stay
 * on one line while they fit in 100 columns and hold no comments, otherwise
 * one element per line with a trailing comma; maps stay on one line only when
 * they are records of plain values or a single key with a flat list.
 */
import type { RecipeDocument } from '../parse/document.js';
import type {
  AttachedComments,
  EntrySyntax,
  FileSyntax,
  ItemSyntax,
  NameSyntax,
  SyntaxNode,
  ValueSyntax,
} from '../parse/dsl-syntax.js';
import { attachComments, type Layout } from './attach-comments.js';
import { documentToSyntax } from './document-to-syntax.js';
import { needsQuotes } from './names.js';
import { parseDslSyntax } from '../parse/dsl.js';
import type { Result } from '../diagnostics.js';
import type { Source } from '../source.js';

const WIDTH = 100;
const INDENT = '  ';
const NO_LAYOUT: Layout = { comments: new Map(), blankBefore: new Set() };

/** Prints a recipe document as canonical DSL text. */
export function printDsl(doc: RecipeDocument): string {
  return printSyntax(documentToSyntax(doc), NO_LAYOUT);
}

/** Formats `.qr` source text canonically, keeping comments; syntax errors come back as diagnostics. */
export function formatDsl(source: Source): Result<string | undefined> {
  const parsed = parseDslSyntax(source);
  const file = parsed.value.file;
  if (!file) return { value: undefined, diagnostics: parsed.diagnostics };
  return { value: printSyntax(file, attachComments(file, parsed.value.comments, source.text)), diagnostics: parsed.diagnostics };
}

/** Prints a syntax tree with the comments and blank lines of `layout`. */
export function printSyntax(file: FileSyntax, layout: Layout): string {
  const p = new Printer(layout);
  p.file(file);
  return p.lines.join('\n').replace(/\n{3,}/g, '\n\n') + '\n';
}

class Printer {
  readonly lines: string[] = [];
  constructor(private readonly layout: Layout) {}

  private c(node: SyntaxNode): AttachedComments | undefined {
    return this.layout.comments.get(node);
  }

  private leading(node: SyntaxNode, indent: string): void {
    for (const c of this.c(node)?.leading ?? []) this.lines.push(indent + c.text);
  }

  /** Appends the node's trailing comment to the last printed line. */
  private trailing(node: SyntaxNode): void {
    const t = this.c(node)?.trailing;
    if (t) this.lines[this.lines.length - 1] += '  ' + t.text;
  }

  private inner(node: SyntaxNode, indent: string): void {
    for (const c of this.c(node)?.inner ?? []) this.lines.push(indent + c.text);
  }

  file(f: FileSyntax): void {
    let prev: ItemSyntax | undefined;
    for (const item of f.items) {
      if (prev && this.blankBetween(prev, item)) this.lines.push('');
      this.item(item);
      prev = item;
    }
    if ((this.c(f)?.inner.length ?? 0) > 0 && this.lines.length > 0) this.lines.push('');
    this.inner(f, '');
  }

  private blankBetween(a: ItemSyntax, b: ItemSyntax): boolean {
    const block = (x: ItemSyntax): boolean => x.kind === 'moe' || x.kind === 'args' || x.kind === 'stage';
    if (block(a) || block(b) || this.layout.blankBefore.has(b)) return true;
    if (a.kind === 'header' && b.kind === 'model') return false;
    return a.kind !== b.kind;
  }

  private item(item: ItemSyntax): void {
    this.leading(item, '');
    switch (item.kind) {
      case 'header': {
        const parts = ['recipe'];
        if (item.name) parts.push(JSON.stringify(item.name.value));
        if (item.version) parts.push('version', JSON.stringify(item.version.value));
        this.lines.push(parts.join(' '));
        break;
      }
      case 'model':
        this.lines.push(`model ${JSON.stringify(item.model.value)}`);
        break;
      case 'import':
        this.lines.push(`import ${JSON.stringify(item.path.value)}`);
        break;
      case 'let':
        this.assignment(`let ${item.name.text}`, item.value, item, '');
        break;
      case 'args':
        this.block('args', item.entries, item, '');
        break;
      case 'moe':
        if (this.empty(item, item.items)) {
          this.lines.push('moe {}');
          break;
        }
        this.lines.push('moe {');
        this.children(item.items, INDENT, (x) =>
          x.kind === 'rewrite' ? this.block(`rewrite ${name(x.name)}`, x.entries, x, INDENT) : this.entry(x, INDENT),
        );
        this.inner(item, INDENT);
        this.lines.push('}');
        break;
      case 'stage':
        if (this.empty(item, item.items)) {
          this.lines.push(`stage ${name(item.name)} {}`);
          break;
        }
        this.lines.push(`stage ${name(item.name)} {`);
        this.children(item.items, INDENT, (x) => {
          if (x.kind === 'modifier') this.block(name(x.name), x.entries, x, INDENT);
          else if (this.empty(x, x.modifiers)) {
            this.lines.push(`${INDENT}group ${name(x.name)} {}`);
            this.trailing(x);
          } else {
            this.lines.push(`${INDENT}group ${name(x.name)} {`);
            this.children(x.modifiers, INDENT + INDENT, (m) => this.block(name(m.name), m.entries, m, INDENT + INDENT), true);
            this.inner(x, INDENT + INDENT);
            this.lines.push(`${INDENT}}`);
            this.trailing(x);
          }
        }, true);
        this.inner(item, INDENT);
        this.lines.push('}');
        break;
    }
    // `let` and `args` print their trailing comment themselves.
    if (item.kind !== 'let' && item.kind !== 'args') this.trailing(item);
  }

  /** Prints siblings; blocks are always separated by a blank line, entries where the source had one. */
  private children<T extends SyntaxNode>(xs: readonly T[], indent: string, each: (x: T) => void, blocks = false): void {
    xs.forEach((x, i) => {
      const isBlock = blocks || x.kind === 'rewrite' || (i > 0 && xs[i - 1]!.kind === 'rewrite');
      if (i > 0 && (isBlock || this.layout.blankBefore.has(x))) this.lines.push('');
      if (x.kind !== 'entry') this.leading(x, indent);
      each(x);
    });
  }

  /** True when a block has no children and no comments inside, so it prints as `head {}`. */
  private empty(node: SyntaxNode, children: readonly unknown[]): boolean {
    return children.length === 0 && (this.c(node)?.inner.length ?? 0) === 0;
  }

  private block(head: string, entries: readonly EntrySyntax[], node: SyntaxNode, indent: string): void {
    const inner = indent + INDENT;
    if (this.empty(node, entries)) {
      this.lines.push(`${indent}${head} {}`);
    } else {
      this.lines.push(`${indent}${head} {`);
      this.children(entries, inner, (e) => this.entry(e, inner));
      this.inner(node, inner);
      this.lines.push(`${indent}}`);
    }
    this.trailing(node);
  }

  private entry(e: EntrySyntax, indent: string): void {
    this.leading(e, indent);
    this.assignment(name(e.key), e.value, e, indent);
  }

  /** `head = value` at `indent`, with the node's trailing comment. */
  private assignment(head: string, value: ValueSyntax, node: SyntaxNode, indent: string): void {
    const prefix = `${indent}${head} = `;
    const flat = this.inline(value);
    if (flat !== undefined && prefix.length + flat.length <= WIDTH) {
      this.lines.push(prefix + flat);
    } else {
      this.lines.push(prefix);
      this.multiline(value, indent);
    }
    this.trailing(node);
  }

  /** Prints `value` across lines; the first line continues the last printed line. */
  private multiline(v: ValueSyntax, indent: string): void {
    const inner = indent + INDENT;
    const last = this.lines.length - 1;
    switch (v.kind) {
      case 'list': {
        this.lines[last] += '[';
        for (const el of v.elements) {
          this.leading(el, inner);
          const flat = this.inline(el, true);
          if (flat !== undefined && inner.length + flat.length + 1 <= WIDTH) this.lines.push(`${inner}${flat},`);
          else {
            this.lines.push(inner);
            this.multiline(el, inner);
            this.lines[this.lines.length - 1] += ',';
          }
          this.trailing(el);
        }
        this.inner(v, inner);
        this.lines.push(`${indent}]`);
        return;
      }
      case 'map': {
        this.lines[last] += '{';
        this.children(v.entries, inner, (e) => this.entry(e, inner));
        this.inner(v, inner);
        this.lines.push(`${indent}}`);
        return;
      }
      case 'concat': {
        v.parts.forEach((part, i) => {
          if (i > 0) this.lines[this.lines.length - 1] += ' + ';
          const flat = this.inline(part);
          if (flat !== undefined) this.lines[this.lines.length - 1] += flat;
          else this.multiline(part, indent);
        });
        return;
      }
      default:
        this.lines[last] += this.inline(v)!;
    }
  }

  /**
   * One-line form of a value, or undefined when it must span lines.
   * `ownPrinted`: the caller prints the value's own leading and trailing comments.
   */
  private inline(v: ValueSyntax, ownPrinted = false): string | undefined {
    const comments = this.c(v);
    if (comments && (comments.inner.length > 0 || (!ownPrinted && (comments.leading.length > 0 || comments.trailing)))) {
      return undefined;
    }
    switch (v.kind) {
      case 'string':
        return JSON.stringify(v.value);
      case 'ident':
        return v.name;
      case 'regex':
        return `re"${v.text}"`;
      case 'number':
        return v.raw;
      case 'bool':
        return String(v.value);
      case 'null':
        return 'null';
      case 'list': {
        const parts = v.elements.map((e) => this.inline(e));
        if (parts.some((x) => x === undefined)) return undefined;
        if (v.elements.some((e) => e.kind === 'map' && e.entries.length > 0)) return undefined;
        return `[${parts.join(', ')}]`;
      }
      case 'map': {
        if (v.entries.length === 0) return '{}';
        // Inline: a record of scalars (`{ num_bits = 8, type = int }`) or one key with a flat list (`{ W4A16 = [Linear] }`).
        const scalar = (x: ValueSyntax): boolean => x.kind !== 'list' && x.kind !== 'map' && x.kind !== 'concat';
        const flatList = (x: ValueSyntax): boolean => x.kind === 'list' && x.elements.every(scalar);
        const simple = v.entries.every((e) => scalar(e.value)) || (v.entries.length === 1 && flatList(v.entries[0]!.value));
        if (!simple || v.entries.some((e) => this.c(e))) return undefined;
        const parts = v.entries.map((e) => {
          const x = this.inline(e.value);
          return x === undefined ? undefined : `${name(e.key)} = ${x}`;
        });
        if (parts.some((x) => x === undefined)) return undefined;
        return `{ ${parts.join(', ')} }`;
      }
      case 'concat': {
        const parts = v.parts.map((e) => this.inline(e));
        return parts.some((x) => x === undefined) ? undefined : parts.join(' + ');
      }
    }
  }
}

function name(n: NameSyntax): string {
  return n.quoted && needsQuotes(n.text) ? JSON.stringify(n.text) : n.text;
}
