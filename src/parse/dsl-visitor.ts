/**
 * The CST visitor: Chevrotain's concrete syntax tree → the `.qr` syntax
 * tree. It runs only on a CST without syntax errors, so every token the
 * grammar requires is present.
 */
import type { CstNode, IToken } from 'chevrotain';
import { recipeParser } from '../../grammar/parser.js';
import type * as C from '../../grammar/cst.js';
import type { Span } from '../source.js';
import type {
  EntrySyntax,
  FileSyntax,
  GroupSyntax,
  ItemSyntax,
  ModifierSyntax,
  NameSyntax,
  RewriteSyntax,
  StringSyntax,
  ValueSyntax,
} from './dsl-syntax.js';

type Ctor = new () => {
  visit(node: CstNode | CstNode[], param?: unknown): unknown;
  validateVisitor(): void;
};

let visitorInstance: ((cst: CstNode, path: string) => FileSyntax) | undefined;

/** Converts a recipe CST (from `RecipeParser.recipeFile`) into a syntax tree. */
export function cstToSyntax(cst: CstNode, path: string): FileSyntax {
  visitorInstance ??= makeVisitor();
  return visitorInstance(cst, path);
}

function makeVisitor(): (cst: CstNode, path: string) => FileSyntax {
  const Base = recipeParser().getBaseCstVisitorConstructor() as unknown as Ctor;
  let path = '';
  const tokSpan = (t: IToken): Span => ({ path, start: t.startOffset, end: t.startOffset + t.image.length });
  const join = (a: Span, b: Span): Span => ({ path, start: a.start, end: b.end });
  const str = (t: IToken): StringSyntax => ({ value: JSON.parse(t.image) as string, span: tokSpan(t) });
  const byOffset = <T extends { span: Span }>(xs: T[]): T[] => xs.sort((a, b) => a.span.start - b.span.start);

  class Visitor extends Base implements C.RecipeCstVisitor<void, unknown> {
    constructor() {
      super();
      this.validateVisitor();
    }

    recipeFile(c: C.RecipeFileCstChildren): FileSyntax {
      const items = (c.topItem ?? []).map((t) => this.visit(t) as ItemSyntax);
      return { kind: 'file', items, span: { path, start: 0, end: items.length ? items[items.length - 1]!.span.end : 0 } };
    }

    header(c: C.HeaderCstChildren): ItemSyntax {
      const keyword = tokSpan(c.Recipe[0]!);
      const name = c.name ? str(c.name[0]!) : undefined;
      const version = c.version ? str(c.version[0]!) : undefined;
      return {
        kind: 'header',
        keyword,
        ...(name ? { name } : {}),
        ...(version ? { version, versionKeyword: tokSpan(c.Version![0]!) } : {}),
        span: join(keyword, version?.span ?? name?.span ?? keyword),
      };
    }

    topItem(c: C.TopItemCstChildren): ItemSyntax {
      const child = c.header ?? c.modelDecl ?? c.importDecl ?? c.letDecl ?? c.moeBlock ?? c.argsBlock ?? c.stageBlock;
      return this.visit(child![0]!) as ItemSyntax;
    }

    modelDecl(c: C.ModelDeclCstChildren): ItemSyntax {
      const keyword = tokSpan(c.Model[0]!);
      const model = str(c.StringLiteral[0]!);
      return { kind: 'model', keyword, model, span: join(keyword, model.span) };
    }

    importDecl(c: C.ImportDeclCstChildren): ItemSyntax {
      const p = str(c.StringLiteral[0]!);
      return { kind: 'import', path: p, span: join(tokSpan(c.Import[0]!), p.span) };
    }

    letDecl(c: C.LetDeclCstChildren): ItemSyntax {
      const value = this.visit(c.value) as ValueSyntax;
      return { kind: 'let', name: name(c.Name[0]!), value, span: join(tokSpan(c.Let[0]!), value.span) };
    }

    moeBlock(c: C.MoeBlockCstChildren): ItemSyntax {
      const items = [
        ...(c.rewriteBlock ?? []).map((n) => this.visit(n) as RewriteSyntax),
        ...(c.entry ?? []).map((n) => this.visit(n) as EntrySyntax),
      ];
      const keyword = tokSpan(c.Moe[0]!);
      return { kind: 'moe', keyword, items: byOffset(items), span: join(keyword, tokSpan(c.RCurly[0]!)) };
    }

    rewriteBlock(c: C.RewriteBlockCstChildren): RewriteSyntax {
      return {
        kind: 'rewrite',
        name: this.visit(c.blockName) as NameSyntax,
        entries: this.entries(c.entry),
        span: join(tokSpan(c.Rewrite[0]!), tokSpan(c.RCurly[0]!)),
      };
    }

    argsBlock(c: C.ArgsBlockCstChildren): ItemSyntax {
      const keyword = tokSpan(c.Args[0]!);
      return { kind: 'args', keyword, entries: this.entries(c.entry), span: join(keyword, tokSpan(c.RCurly[0]!)) };
    }

    stageBlock(c: C.StageBlockCstChildren): ItemSyntax {
      const items = [
        ...(c.groupBlock ?? []).map((n) => this.visit(n) as GroupSyntax),
        ...(c.modifierBlock ?? []).map((n) => this.visit(n) as ModifierSyntax),
      ];
      return {
        kind: 'stage',
        name: this.visit(c.blockName) as NameSyntax,
        items: byOffset(items),
        span: join(tokSpan(c.Stage[0]!), tokSpan(c.RCurly[0]!)),
      };
    }

    groupBlock(c: C.GroupBlockCstChildren): GroupSyntax {
      return {
        kind: 'group',
        name: this.visit(c.blockName) as NameSyntax,
        modifiers: (c.modifierBlock ?? []).map((n) => this.visit(n) as ModifierSyntax),
        span: join(tokSpan(c.Group[0]!), tokSpan(c.RCurly[0]!)),
      };
    }

    modifierBlock(c: C.ModifierBlockCstChildren): ModifierSyntax {
      const n = c.Identifier ? name(c.Identifier[0]!) : quotedName(c.StringLiteral![0]!);
      return { kind: 'modifier', name: n, entries: this.entries(c.entry), span: join(n.span, tokSpan(c.RCurly[0]!)) };
    }

    blockName(c: C.BlockNameCstChildren): NameSyntax {
      return c.Name ? name(c.Name[0]!) : quotedName(c.StringLiteral![0]!);
    }

    entry(c: C.EntryCstChildren): EntrySyntax {
      const k = c.key![0]!;
      const key = k.tokenType.name === 'StringLiteral' ? quotedName(k) : name(k);
      const value = this.visit(c.value) as ValueSyntax;
      return { kind: 'entry', key, value, span: join(key.span, value.span) };
    }

    value(c: C.ValueCstChildren): ValueSyntax {
      const parts = c.term.map((t) => this.visit(t) as ValueSyntax);
      if (parts.length === 1) return parts[0]!;
      return { kind: 'concat', parts, span: join(parts[0]!.span, parts[parts.length - 1]!.span) };
    }

    term(c: C.TermCstChildren): ValueSyntax {
      if (c.list) return this.visit(c.list) as ValueSyntax;
      if (c.map) return this.visit(c.map) as ValueSyntax;
      const t = (c.StringLiteral ?? c.RegexLiteral ?? c.IntegerLiteral ?? c.FloatLiteral ?? c.True ?? c.False ?? c.Null ?? c.Name)![0]!;
      const span = tokSpan(t);
      switch (t.tokenType.name) {
        case 'StringLiteral':
          return { kind: 'string', value: JSON.parse(t.image) as string, span };
        case 'RegexLiteral':
          return { kind: 'regex', text: t.image.slice(3, -1), span };
        case 'IntegerLiteral':
        case 'FloatLiteral':
          return { kind: 'number', value: Number(t.image), raw: t.image, span };
        case 'True':
        case 'False':
          return { kind: 'bool', value: t.image === 'true', span };
        case 'Null':
          return { kind: 'null', span };
        default:
          return { kind: 'ident', name: t.image, span };
      }
    }

    list(c: C.ListCstChildren): ValueSyntax {
      return {
        kind: 'list',
        elements: (c.value ?? []).map((v) => this.visit(v) as ValueSyntax),
        span: join(tokSpan(c.LSquare[0]!), tokSpan(c.RSquare[0]!)),
      };
    }

    map(c: C.MapCstChildren): ValueSyntax {
      return { kind: 'map', entries: this.entries(c.entry), span: join(tokSpan(c.LCurly[0]!), tokSpan(c.RCurly[0]!)) };
    }

    private entries(nodes: C.EntryCstNode[] | undefined): EntrySyntax[] {
      return (nodes ?? []).map((n) => this.visit(n) as EntrySyntax);
    }
  }

  function name(t: IToken): NameSyntax {
    return { text: t.image, quoted: false, span: tokSpan(t) };
  }
  function quotedName(t: IToken): NameSyntax {
    return { text: JSON.parse(t.image) as string, quoted: true, span: tokSpan(t) };
  }

  const visitor = new Visitor();
  return (cst, p) => {
    path = p;
    return visitor.visit(cst) as FileSyntax;
  };
}
