/**
 * The syntax tree of a `.qr` file: what the source says, before `let`
 * bindings and imports are resolved. The formatter prints this tree (so
 * bindings, regex literals and spelling survive `quantc fmt`); lowering
 * turns it into the shared RecipeDocument.
 */
import type { Span } from '../source.js';

/** A name as written: a bare word, or a quoted string where a name may be quoted. */
export interface NameSyntax {
  readonly text: string;
  readonly quoted: boolean;
  readonly span: Span;
}

/** A string literal and where it is. */
export interface StringSyntax {
  readonly value: string;
  readonly span: Span;
}

/** A value as written. */
export type ValueSyntax =
  | { readonly kind: 'string'; readonly value: string; readonly span: Span }
  /** A bare word: a `let` binding when one is visible, else the word as a string. */
  | { readonly kind: 'ident'; readonly name: string; readonly span: Span }
  /** `re"…"`: raw Python regex text; lowers to the string `"re:" + text`. */
  | { readonly kind: 'regex'; readonly text: string; readonly span: Span }
  /** `raw` keeps the spelling (`1.0` vs `1`) for the formatter. */
  | { readonly kind: 'number'; readonly value: number; readonly raw: string; readonly span: Span }
  | { readonly kind: 'bool'; readonly value: boolean; readonly span: Span }
  | { readonly kind: 'null'; readonly span: Span }
  | { readonly kind: 'list'; readonly elements: readonly ValueSyntax[]; readonly span: Span }
  | { readonly kind: 'map'; readonly entries: readonly EntrySyntax[]; readonly span: Span }
  /** `a + b + …`: list concatenation. */
  | { readonly kind: 'concat'; readonly parts: readonly ValueSyntax[]; readonly span: Span };

/** `key = value` inside a block or map. */
export interface EntrySyntax {
  readonly kind: 'entry';
  readonly key: NameSyntax;
  readonly value: ValueSyntax;
  readonly span: Span;
}

/** `recipe "name" version "x"`. */
export interface HeaderSyntax {
  readonly kind: 'header';
  readonly keyword: Span;
  readonly name?: StringSyntax;
  readonly version?: StringSyntax;
  readonly versionKeyword?: Span;
  readonly span: Span;
}

/** `model "org/name"`. */
export interface ModelSyntax {
  readonly kind: 'model';
  readonly keyword: Span;
  readonly model: StringSyntax;
  readonly span: Span;
}

/** `import "path.qr"`. */
export interface ImportSyntax {
  readonly kind: 'import';
  readonly path: StringSyntax;
  readonly span: Span;
}

/** `let name = value`. */
export interface LetSyntax {
  readonly kind: 'let';
  readonly name: NameSyntax;
  readonly value: ValueSyntax;
  readonly span: Span;
}

/** `rewrite Class { … }` inside `moe`. */
export interface RewriteSyntax {
  readonly kind: 'rewrite';
  readonly name: NameSyntax;
  readonly entries: readonly EntrySyntax[];
  readonly span: Span;
}

/** `moe { … }`. */
export interface MoeSyntax {
  readonly kind: 'moe';
  readonly keyword: Span;
  readonly items: readonly (EntrySyntax | RewriteSyntax)[];
  readonly span: Span;
}

/** `args { … }`. */
export interface ArgsSyntax {
  readonly kind: 'args';
  readonly keyword: Span;
  readonly entries: readonly EntrySyntax[];
  readonly span: Span;
}

/** `ModifierName { … }`. */
export interface ModifierSyntax {
  readonly kind: 'modifier';
  readonly name: NameSyntax;
  readonly entries: readonly EntrySyntax[];
  readonly span: Span;
}

/** `group name { … }`. */
export interface GroupSyntax {
  readonly kind: 'group';
  readonly name: NameSyntax;
  readonly modifiers: readonly ModifierSyntax[];
  readonly span: Span;
}

/** `stage name { … }`. */
export interface StageSyntax {
  readonly kind: 'stage';
  readonly name: NameSyntax;
  readonly items: readonly (GroupSyntax | ModifierSyntax)[];
  readonly span: Span;
}

/** A top-level item. */
export type ItemSyntax = HeaderSyntax | ModelSyntax | ImportSyntax | LetSyntax | MoeSyntax | ArgsSyntax | StageSyntax;

/** A whole file. */
export interface FileSyntax {
  readonly kind: 'file';
  readonly items: readonly ItemSyntax[];
  readonly span: Span;
}

/** Any node comments can attach to. */
export type SyntaxNode = FileSyntax | ItemSyntax | RewriteSyntax | GroupSyntax | ModifierSyntax | EntrySyntax | ValueSyntax;

/** A `#` comment. */
export interface CommentSyntax {
  readonly text: string;
  readonly span: Span;
}

/** Comments attached to one node: before it, at the end of its last line, and before its closing bracket. */
export interface AttachedComments {
  leading: CommentSyntax[];
  trailing?: CommentSyntax;
  inner: CommentSyntax[];
}

/** Comments by node, filled by `attachComments`. */
export type CommentMap = Map<SyntaxNode, AttachedComments>;

/** The nodes inside a node that take comments, in source order (empty for leaves). */
export function childrenOf(node: SyntaxNode): readonly SyntaxNode[] {
  switch (node.kind) {
    case 'file':
      return node.items;
    case 'stage':
      return node.items;
    case 'group':
      return node.modifiers;
    case 'modifier':
    case 'args':
    case 'rewrite':
      return node.entries;
    case 'moe':
      return node.items;
    case 'entry':
    case 'let':
      return node.value.kind === 'list' || node.value.kind === 'map' || node.value.kind === 'concat' ? [node.value] : [];
    case 'list':
      return node.elements;
    case 'map':
      return node.entries;
    case 'concat':
      return node.parts;
    default:
      return [];
  }
}
