/**
 * Attaches `#` comments to syntax nodes so the printer can put them back:
 * a comment on its own line belongs to the node after it, a comment after
 * code on the same line trails the node before it, and a comment after the
 * last node of a block stays inside that block, before its closing bracket.
 */
import { childrenOf, type AttachedComments, type CommentMap, type CommentSyntax, type SyntaxNode } from '../parse/dsl-syntax.js';

/** Nodes with brackets of their own, which can hold comments even when empty. */
const BLOCKS = new Set<SyntaxNode['kind']>(['file', 'stage', 'group', 'modifier', 'moe', 'rewrite', 'args', 'list', 'map']);

/** Comments by node, plus the nodes the source separated from their predecessor by a blank line. */
export interface Layout {
  readonly comments: CommentMap;
  readonly blankBefore: ReadonlySet<SyntaxNode>;
}

/** Attaches `comments` (sorted by offset) to the nodes of `root`, using `text` to see line breaks. */
export function attachComments(root: SyntaxNode, comments: readonly CommentSyntax[], text: string): Layout {
  const map: CommentMap = new Map();
  const blankBefore = new Set<SyntaxNode>();
  const slot = (n: SyntaxNode): AttachedComments => {
    let s = map.get(n);
    if (!s) {
      s = { leading: [], inner: [] };
      map.set(n, s);
    }
    return s;
  };
  const sameLine = (from: number, to: number): boolean => !text.slice(from, to).includes('\n');

  const visit = (node: SyntaxNode, own: readonly CommentSyntax[]): void => {
    const kids = childrenOf(node);
    const inside = new Map<SyntaxNode, CommentSyntax[]>();
    let k = 0;
    for (const c of own) {
      while (k < kids.length && kids[k]!.span.end <= c.span.start) k++;
      const kid = kids[k];
      if (kid && kid.span.start < c.span.start) {
        const list = inside.get(kid);
        if (list) list.push(c);
        else inside.set(kid, [c]);
        continue;
      }
      const prev = kids[k - 1];
      if (prev && sameLine(prev.span.end, c.span.start) && !slot(prev).trailing) slot(prev).trailing = c;
      else if (kid) slot(kid).leading.push(c);
      else if (!BLOCKS.has(node.kind)) slot(node).leading.push(c);
      else slot(node).inner.push(c);
    }
    for (let i = 0; i < kids.length; i++) {
      const kid = kids[i]!;
      if (i > 0) {
        const start = map.get(kid)?.leading[0]?.span.start ?? kid.span.start;
        const prev = kids[i - 1]!;
        const from = map.get(prev)?.trailing?.span.end ?? prev.span.end;
        if (/\n[ \t\r]*\n/.test(text.slice(from, start))) blankBefore.add(kid);
      }
      visit(kid, inside.get(kid) ?? []);
    }
  };
  visit(root, comments);
  return { comments: map, blankBefore };
}
