/**
 * Decides the calibration rewrite of every MoE block of a tree: a rewrite
 * declared in the recipe, else the built-in catalog (by block class, then by
 * experts class), else transformers' table of fused experts classes (which
 * llm-compressor main linearizes whatever block holds them), else route-all
 * for experts that are already Linear MLPs, else a `moe-unsupported`
 * diagnostic. Never a silent skip.
 */
import { suggestion, warning, error, withSeverity, type Diagnostic, type Result } from '../diagnostics.js';
import type { MoeRewriteDecl, MoeSettings } from '../ir/types.js';
import { classOf, localName, type ModuleTree } from '../model/module-tree.js';
import { catalogEntryForBlock, catalogEntryForExperts, type CatalogEntry } from './catalog.js';
import {
  childIndex,
  detectExperts,
  detectMoeLike,
  findRouter,
  type ChildIndex,
  type DetectedExperts,
  type DetectedRouter,
} from './detect.js';
import { expertShape, type ExpertShape } from './expert-linears.js';
import { FUSED_EXPERTS_CLASSES, type FusedExpertsClass } from './fused-experts.js';
import {
  DEFAULT_FUSED_LAYOUT,
  type ExpertsLayout,
  type FusedLayout,
  type LinearExpertsClass,
  type RewriteKind,
} from './types.js';

/** One MoE block and the rewrite it gets. */
export interface ResolvedRewrite {
  /** The block module, e.g. `model.layers.1.mlp`. */
  readonly module: string;
  readonly index: number;
  /** The block class, e.g. `Glm4MoeLiteMoE`. */
  readonly class: string;
  readonly experts: DetectedExperts;
  readonly router: DetectedRouter | undefined;
  readonly rewrite: RewriteKind;
  /** The layout the rewrite assumes (fused flags for unpacking, or a ModuleList). */
  readonly layout: ExpertsLayout;
  /**
   * Where the rewrite came from: a recipe declaration, the built-in catalog,
   * or `generic` for an unknown class whose experts are already Linear MLPs
   * (routing every token needs no class-specific knowledge then).
   */
  readonly source: 'declared' | 'builtin' | 'generic';
  /** Class the unpacked experts module gets (llm-compressor main's name for it). */
  readonly linearExpertsClass: LinearExpertsClass;
  /** What each unpacked expert looks like (present for `unpack-fused-experts`). */
  readonly expert?: ExpertShape;
  /** Class of an `act_fn` child to add when the fused module has none. */
  readonly unpackedActFn?: string;
  /** The built-in entry, when the catalog supplied the rewrite. */
  readonly entry?: CatalogEntry;
  /** The recipe declaration, when one supplied the rewrite. */
  readonly declaration?: MoeRewriteDecl;
}

/** MoE-like modules of one class with no rewrite. */
export interface UnsupportedMoe {
  readonly class: string;
  readonly modules: readonly string[];
}

/** Every MoE block of a tree with its rewrite, plus what could not be resolved. */
export interface MoeResolution {
  /** In tree order. */
  readonly rewrites: readonly ResolvedRewrite[];
  /** Grouped by class, in order of first appearance. */
  readonly unsupported: readonly UnsupportedMoe[];
  readonly calibrateAllExperts: boolean;
}

/** One block before its rule is chosen: where its experts and router are. */
interface Candidate {
  readonly index: number;
  readonly experts: DetectedExperts | undefined;
  readonly router: DetectedRouter | undefined;
}

/**
 * Resolves the calibration rewrite of every MoE block in `tree`.
 *
 * Candidates are the MoE-like modules `detectMoeLike` finds plus every module
 * whose class is declared in the recipe or listed in the catalog (so a
 * declaration also covers a block detection would miss). Declared rewrites
 * match exact class names and override built-in ones.
 */
export function resolveMoeRewrites(tree: ModuleTree, settings: MoeSettings): Result<MoeResolution> {
  const diagnostics: Diagnostic[] = [];
  const children = childIndex(tree);
  const declared = declarationsByClass(settings.rewrites, diagnostics);
  const candidates = collectCandidates(tree, children, declared);

  const rewrites: ResolvedRewrite[] = [];
  const unsupported = new Map<string, string[]>();
  const usedDeclarations = new Set<string>();
  const overridden = new Set<string>();
  const routedOnly = new Map<string, number>();
  // One diagnostic per class and code, however many blocks share the problem.
  const failures = new Map<string, { diagnostic: Diagnostic; count: number }>();
  const fail = (cls: string, d: Diagnostic): void => {
    const key = `${d.code} ${cls}`;
    const seen = failures.get(key);
    if (seen) seen.count++;
    else failures.set(key, { diagnostic: d, count: 1 });
  };
  for (const c of candidates) {
    const cls = classOf(tree, c.index).name;
    const declaration = declared.get(cls);
    if (declaration !== undefined) {
      usedDeclarations.add(cls);
      if (catalogEntryForBlock(cls) !== undefined) overridden.add(cls);
      const resolved = fromDeclaration(tree, children, c, declaration);
      if ('code' in resolved) fail(cls, resolved);
      else rewrites.push(resolved);
      continue;
    }
    const entry = catalogEntryForBlock(cls) ?? (c.experts ? catalogEntryForExperts(c.experts.class) : undefined);
    const known = c.experts?.layout === 'fused' ? FUSED_EXPERTS_CLASSES.get(c.experts.class) : undefined;
    if (c.experts !== undefined && (entry !== undefined || known !== undefined)) {
      const resolved = entry !== undefined ? fromEntry(tree, c, c.experts, entry) : fromFusedClass(tree, c, c.experts, known!);
      if (resolved.rewrite === 'unpack-fused-experts' && resolved.expert === undefined) {
        fail(
          cls,
          error(
            'moe-layout-mismatch',
            `The fused experts "${c.experts.name}" of class "${c.experts.class}" do not have the parameters quantc's rewrite for "${entry?.blockClass ?? c.experts.class}" expects (${layoutText(resolved.layout as FusedLayout)}), so they cannot be unpacked.`,
          ),
        );
        continue;
      }
      rewrites.push(resolved);
      continue;
    }
    if (entry !== undefined) {
      fail(
        cls,
        error(
          'moe-layout-mismatch',
          `Module "${tree.names[c.index]}" of class "${cls}" has no experts container "${entry.experts.attribute}" with fused 3-D parameters or Linear expert MLPs, so its calibration rewrite cannot be applied.`,
        ),
      );
      continue;
    }
    if (c.experts?.layout === 'module_list') {
      rewrites.push(generic(tree, c, c.experts));
      routedOnly.set(cls, (routedOnly.get(cls) ?? 0) + 1);
      continue;
    }
    const list = unsupported.get(cls) ?? [];
    list.push(tree.names[c.index]!);
    unsupported.set(cls, list);
  }

  for (const { diagnostic, count } of failures.values()) {
    const more = count - 1;
    diagnostics.push(
      more === 0
        ? diagnostic
        : { ...diagnostic, notes: [...(diagnostic.notes ?? []), { message: `The same holds for ${more} more module${more === 1 ? '' : 's'} of this class.` }] },
    );
  }
  for (const [cls, count] of routedOnly) {
    diagnostics.push(
      withSeverity(
        warning(
          'moe-route-all-tokens',
          `${count} module${count === 1 ? '' : 's'} of class "${cls}" hold their experts as Linear MLPs: nothing is unpacked, and quantc routes every calibration token through every expert while the block output stays the routed one.`,
        ),
        'info',
      ),
    );
  }

  for (const cls of overridden) {
    const decl = declared.get(cls)!;
    diagnostics.push(
      withSeverity(
        warning(
          'moe-rewrite-overrides-builtin',
          `The declared rewrite for "${cls}" replaces quantc's built-in rewrite for that class.`,
          decl.origin,
        ),
        'info',
      ),
    );
  }
  const treeClasses = tree.classes.map((c) => c.name);
  for (const [cls, decl] of declared) {
    if (usedDeclarations.has(cls)) continue;
    diagnostics.push(
      warning(
        'moe-rewrite-unused',
        `The declared rewrite for "${cls}" matches no module of this model.${suggestion(cls, treeClasses)}`,
        decl.origin,
      ),
    );
  }
  const unsupportedList = [...unsupported].map(([cls, modules]) => ({ class: cls, modules }));
  for (const u of unsupportedList) diagnostics.push(unsupportedDiagnostic(tree, u, candidates, settings));

  if (!settings.calibrateAllExperts && rewrites.length > 0) {
    diagnostics.push(
      warning(
        'moe-partial-calibration',
        `calibrate_all_experts is false: each of the ${rewrites.length} MoE blocks calibrates its experts on routed tokens only, so rarely chosen experts may see few or no tokens; on_low_coverage (now ${settings.onLowCoverage}, threshold min_expert_tokens = ${settings.minExpertTokens}) decides what apply does with them.`,
        settings.origin,
      ),
    );
  }
  return {
    value: { rewrites, unsupported: unsupportedList, calibrateAllExperts: settings.calibrateAllExperts },
    diagnostics,
  };
}

/** Declarations keyed by class; a repeated class keeps its first declaration and warns. */
function declarationsByClass(decls: readonly MoeRewriteDecl[], diagnostics: Diagnostic[]): Map<string, MoeRewriteDecl> {
  const map = new Map<string, MoeRewriteDecl>();
  for (const d of decls) {
    if (map.has(d.class)) {
      diagnostics.push(
        warning('moe-rewrite-duplicate', `A rewrite for "${d.class}" is declared more than once; the first one is used.`, d.origin),
      );
      continue;
    }
    map.set(d.class, d);
  }
  return map;
}

function collectCandidates(tree: ModuleTree, children: ChildIndex, declared: ReadonlyMap<string, MoeRewriteDecl>): Candidate[] {
  const byIndex = new Map<number, Candidate>();
  for (const m of detectMoeLike(tree, children)) byIndex.set(m.index, m);
  for (let i = 0; i < tree.names.length; i++) {
    if (byIndex.has(i)) continue;
    const cls = classOf(tree, i).name;
    const attribute = declared.get(cls)?.experts ?? catalogEntryForBlock(cls)?.experts.attribute;
    if (attribute === undefined) continue;
    const expertsIndex = childNamed(tree, children, i, attribute);
    const experts = expertsIndex === undefined ? undefined : detectExperts(tree, children, expertsIndex);
    const router = experts === undefined ? undefined : findRouter(tree, children, i, experts.index, experts.count);
    byIndex.set(i, { index: i, experts, router });
  }
  return [...byIndex.values()].sort((a, b) => a.index - b.index);
}

function childNamed(tree: ModuleTree, children: ChildIndex, i: number, local: string): number | undefined {
  for (let c = children.start[i]!; c < children.start[i + 1]!; c++) {
    if (localName(tree.names[children.list[c]!]!) === local) return children.list[c]!;
  }
  return undefined;
}

function childNames(tree: ModuleTree, children: ChildIndex, i: number): string[] {
  const out: string[] = [];
  for (let c = children.start[i]!; c < children.start[i + 1]!; c++) out.push(localName(tree.names[children.list[c]!]!));
  return out;
}

function fromEntry(tree: ModuleTree, c: Candidate, experts: DetectedExperts, entry: CatalogEntry): ResolvedRewrite {
  const fused = experts.layout === 'fused';
  const expert = fused ? expertShape(tree, experts.index, entry.experts.layout) : undefined;
  return {
    module: tree.names[c.index]!,
    index: c.index,
    class: classOf(tree, c.index).name,
    experts,
    router: c.router,
    rewrite: fused ? 'unpack-fused-experts' : 'route-all-tokens',
    layout: fused ? entry.experts.layout : { kind: 'module_list' },
    ...(expert !== undefined ? { expert } : {}),
    source: 'builtin',
    linearExpertsClass: entry.llmCompressor.linearizedAs,
    ...(entry.experts.unpackedActFn !== undefined ? { unpackedActFn: entry.experts.unpackedActFn } : {}),
    entry,
  };
}

function fromFusedClass(tree: ModuleTree, c: Candidate, experts: DetectedExperts, known: FusedExpertsClass): ResolvedRewrite {
  const expert = expertShape(tree, experts.index, known.layout);
  return {
    module: tree.names[c.index]!,
    index: c.index,
    class: classOf(tree, c.index).name,
    experts,
    router: c.router,
    rewrite: 'unpack-fused-experts',
    layout: known.layout,
    ...(expert !== undefined ? { expert } : {}),
    source: 'builtin',
    linearExpertsClass: 'LinearExperts2D',
    ...(known.unpackedActFn !== undefined ? { unpackedActFn: known.unpackedActFn } : {}),
  };
}

function generic(tree: ModuleTree, c: Candidate, experts: DetectedExperts): ResolvedRewrite {
  return {
    module: tree.names[c.index]!,
    index: c.index,
    class: classOf(tree, c.index).name,
    experts,
    router: c.router,
    rewrite: 'route-all-tokens',
    layout: { kind: 'module_list' },
    source: 'generic',
    linearExpertsClass: 'LinearExperts2D',
  };
}

function fromDeclaration(
  tree: ModuleTree,
  children: ChildIndex,
  c: Candidate,
  decl: MoeRewriteDecl,
): ResolvedRewrite | Diagnostic {
  const name = tree.names[c.index]!;
  const attribute = decl.experts ?? 'experts';
  const expertsIndex = childNamed(tree, children, c.index, attribute);
  const experts = expertsIndex === undefined ? undefined : detectExperts(tree, children, expertsIndex);
  if (experts === undefined) {
    return error(
      'moe-rewrite-mismatch',
      `The declared rewrite for "${decl.class}" expects experts at "${name}.${attribute}", but that module ${expertsIndex === undefined ? 'does not exist' : 'holds neither fused 3-D expert parameters nor a ModuleList of Linear expert MLPs'}.`,
      decl.origin,
    );
  }
  const wanted = decl.experts_layout ?? experts.layout;
  if (wanted !== experts.layout) {
    return error(
      'moe-rewrite-mismatch',
      `The declared rewrite for "${decl.class}" says experts_layout = ${wanted}, but "${experts.name}" is ${experts.layout === 'fused' ? 'fused (3-D parameters)' : 'a ModuleList of Linear expert MLPs'}.`,
      decl.origin,
    );
  }
  for (const attr of [decl.router, decl.shared_experts]) {
    if (attr === undefined || childNamed(tree, children, c.index, attr) !== undefined) continue;
    return error(
      'moe-rewrite-mismatch',
      `The declared rewrite for "${decl.class}" names "${attr}", but "${name}" has no such submodule.${suggestion(attr, childNames(tree, children, c.index))}`,
      decl.origin,
    );
  }
  const routerIndex = decl.router === undefined ? undefined : childNamed(tree, children, c.index, decl.router);
  const router: DetectedRouter | undefined =
    routerIndex === undefined ? c.router : { name: tree.names[routerIndex]!, kind: 'module', class: classOf(tree, routerIndex).name };
  const fused = experts.layout === 'fused';
  const layout = declaredLayout(decl);
  const expert = fused ? expertShape(tree, experts.index, layout) : undefined;
  if (fused && expert === undefined) {
    return error(
      'moe-rewrite-mismatch',
      `The declared rewrite for "${decl.class}" describes fused experts as ${layoutText(layout)}, but the parameters of "${experts.name}" do not fit that layout.`,
      decl.origin,
    );
  }
  return {
    module: name,
    index: c.index,
    class: decl.class,
    experts,
    router,
    rewrite: fused ? 'unpack-fused-experts' : 'route-all-tokens',
    layout: fused ? layout : { kind: 'module_list' },
    ...(expert !== undefined ? { expert } : {}),
    source: 'declared',
    linearExpertsClass: 'LinearExperts2D',
    declaration: decl,
  };
}

/** A fused layout in words, naming the parameters it expects. */
function layoutText(layout: FusedLayout): string {
  const gateUp = layout.hasGate ? 'gate_up_proj' : 'up_proj';
  const dims = layout.isTransposed ? '[E, in, out]' : '[E, out, in]';
  return `${gateUp} and down_proj stored ${dims}${layout.hasBias ? ' with biases' : ''}`;
}

function declaredLayout(decl: MoeRewriteDecl): FusedLayout {
  return {
    kind: 'fused',
    isConcatenated: decl.is_concatenated ?? DEFAULT_FUSED_LAYOUT.isConcatenated,
    isTransposed: decl.is_transposed ?? DEFAULT_FUSED_LAYOUT.isTransposed,
    hasBias: decl.has_bias ?? DEFAULT_FUSED_LAYOUT.hasBias,
    hasGate: decl.has_gate ?? DEFAULT_FUSED_LAYOUT.hasGate,
  };
}

function unsupportedDiagnostic(
  tree: ModuleTree,
  u: UnsupportedMoe,
  candidates: readonly Candidate[],
  settings: MoeSettings,
): Diagnostic {
  const first = candidates.find((c) => tree.names[c.index] === u.modules[0])!;
  const experts = first.experts!;
  const routerAttr = first.router?.kind === 'module' ? localName(first.router.name) : undefined;
  const count = u.modules.length;
  const d = error(
    'moe-unsupported',
    `MoE-like class "${u.class}" (${count} module${count === 1 ? '' : 's'}, e.g. "${u.modules[0]}": ${experts.count} experts in "${experts.name}") has no calibration rewrite: its fused experts would not be unpacked into Linear modules (a Linear target would skip them) and would see only routed tokens. Declare a rewrite for it in the recipe's moe settings.`,
    undefined,
    declarationNotes(u.class, localName(experts.name), routerAttr, experts.layout),
  );
  return settings.onUnsupported === 'warning' ? withSeverity(d, 'warning') : d;
}

/** The DSL and YAML snippets that declare a rewrite for `cls`. */
export function declarationNotes(
  cls: string,
  expertsAttr: string,
  routerAttr: string | undefined,
  layout: 'fused' | 'module_list',
): { message: string }[] {
  const dslFields = [`experts = "${expertsAttr}"`, ...(routerAttr ? [`router = "${routerAttr}"`] : []), `experts_layout = ${layout}`];
  const yamlFields = [`experts: ${expertsAttr}`, ...(routerAttr ? [`router: ${routerAttr}`] : []), `experts_layout: ${layout}`];
  return [
    { message: `In a .qr recipe: moe { rewrite ${cls} { ${dslFields.join(' ')} } }` },
    { message: `In YAML: quantc: { moe: { rewrites: [ { class: ${cls}, ${yamlFields.join(', ')} } ] } }` },
    { message: 'Fused layouts also take is_concatenated, is_transposed, has_bias and has_gate (the @use_experts_implementation arguments of the experts class).' },
  ];
}
