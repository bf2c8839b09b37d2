import type { CstNode, ICstVisitor, IToken } from "chevrotain";

export interface RecipeFileCstNode extends CstNode {
  name: "recipeFile";
  children: RecipeFileCstChildren;
}

export type RecipeFileCstChildren = {
  topItem?: TopItemCstNode[];
};

export interface HeaderCstNode extends CstNode {
  name: "header";
  children: HeaderCstChildren;
}

export type HeaderCstChildren = {
  Recipe: IToken[];
  name?: IToken[];
  Version?: IToken[];
  version?: IToken[];
};

export interface TopItemCstNode extends CstNode {
  name: "topItem";
  children: TopItemCstChildren;
}

export type TopItemCstChildren = {
  header?: HeaderCstNode[];
  modelDecl?: ModelDeclCstNode[];
  importDecl?: ImportDeclCstNode[];
  letDecl?: LetDeclCstNode[];
  moeBlock?: MoeBlockCstNode[];
  argsBlock?: ArgsBlockCstNode[];
  stageBlock?: StageBlockCstNode[];
};

export interface ModelDeclCstNode extends CstNode {
  name: "modelDecl";
  children: ModelDeclCstChildren;
}

export type ModelDeclCstChildren = {
  Model: IToken[];
  StringLiteral: IToken[];
};

export interface ImportDeclCstNode extends CstNode {
  name: "importDecl";
  children: ImportDeclCstChildren;
}

export type ImportDeclCstChildren = {
  Import: IToken[];
  StringLiteral: IToken[];
};

export interface LetDeclCstNode extends CstNode {
  name: "letDecl";
  children: LetDeclCstChildren;
}

export type LetDeclCstChildren = {
  Let: IToken[];
  Name: IToken[];
  Equals: IToken[];
  value: ValueCstNode[];
};

export interface MoeBlockCstNode extends CstNode {
  name: "moeBlock";
  children: MoeBlockCstChildren;
}

export type MoeBlockCstChildren = {
  Moe: IToken[];
  LCurly: IToken[];
  rewriteBlock?: RewriteBlockCstNode[];
  entry?: EntryCstNode[];
  RCurly: IToken[];
};

export interface RewriteBlockCstNode extends CstNode {
  name: "rewriteBlock";
  children: RewriteBlockCstChildren;
}

export type RewriteBlockCstChildren = {
  Rewrite: IToken[];
  blockName: BlockNameCstNode[];
  LCurly: IToken[];
  entry?: EntryCstNode[];
  RCurly: IToken[];
};

export interface ArgsBlockCstNode extends CstNode {
  name: "argsBlock";
  children: ArgsBlockCstChildren;
}

export type ArgsBlockCstChildren = {
  Args: IToken[];
  LCurly: IToken[];
  entry?: EntryCstNode[];
  RCurly: IToken[];
};

export interface StageBlockCstNode extends CstNode {
  name: "stageBlock";
  children: StageBlockCstChildren;
}

export type StageBlockCstChildren = {
  Stage: IToken[];
  blockName: BlockNameCstNode[];
  LCurly: IToken[];
  groupBlock?: GroupBlockCstNode[];
  modifierBlock?: ModifierBlockCstNode[];
  RCurly: IToken[];
};

export interface GroupBlockCstNode extends CstNode {
  name: "groupBlock";
  children: GroupBlockCstChildren;
}

export type GroupBlockCstChildren = {
  Group: IToken[];
  blockName: BlockNameCstNode[];
  LCurly: IToken[];
  modifierBlock?: ModifierBlockCstNode[];
  RCurly: IToken[];
};

export interface ModifierBlockCstNode extends CstNode {
  name: "modifierBlock";
  children: ModifierBlockCstChildren;
}

export type ModifierBlockCstChildren = {
  Identifier?: IToken[];
  StringLiteral?: IToken[];
  LCurly: IToken[];
  entry?: EntryCstNode[];
  RCurly: IToken[];
};

export interface BlockNameCstNode extends CstNode {
  name: "blockName";
  children: BlockNameCstChildren;
}

export type BlockNameCstChildren = {
  Name?: IToken[];
  StringLiteral?: IToken[];
};

export interface EntryCstNode extends CstNode {
  name: "entry";
  children: EntryCstChildren;
}

export type EntryCstChildren = {
  key?: (IToken)[];
  Equals: IToken[];
  value: ValueCstNode[];
  Comma?: IToken[];
};

export interface ValueCstNode extends CstNode {
  name: "value";
  children: ValueCstChildren;
}

export type ValueCstChildren = {
  term: (TermCstNode)[];
  Plus?: IToken[];
};

export interface TermCstNode extends CstNode {
  name: "term";
  children: TermCstChildren;
}

export type TermCstChildren = {
  StringLiteral?: IToken[];
  RegexLiteral?: IToken[];
  IntegerLiteral?: IToken[];
  FloatLiteral?: IToken[];
  True?: IToken[];
  False?: IToken[];
  Null?: IToken[];
  Name?: IToken[];
  list?: ListCstNode[];
  map?: MapCstNode[];
};

export interface ListCstNode extends CstNode {
  name: "list";
  children: ListCstChildren;
}

export type ListCstChildren = {
  LSquare: IToken[];
  value?: (ValueCstNode)[];
  Comma?: (IToken)[];
  RSquare: IToken[];
};

export interface MapCstNode extends CstNode {
  name: "map";
  children: MapCstChildren;
}

export type MapCstChildren = {
  LCurly: IToken[];
  entry?: EntryCstNode[];
  RCurly: IToken[];
};

export interface RecipeCstVisitor<IN, OUT> extends ICstVisitor<IN, OUT> {
  recipeFile(children: RecipeFileCstChildren, param?: IN): OUT;
  header(children: HeaderCstChildren, param?: IN): OUT;
  topItem(children: TopItemCstChildren, param?: IN): OUT;
  modelDecl(children: ModelDeclCstChildren, param?: IN): OUT;
  importDecl(children: ImportDeclCstChildren, param?: IN): OUT;
  letDecl(children: LetDeclCstChildren, param?: IN): OUT;
  moeBlock(children: MoeBlockCstChildren, param?: IN): OUT;
  rewriteBlock(children: RewriteBlockCstChildren, param?: IN): OUT;
  argsBlock(children: ArgsBlockCstChildren, param?: IN): OUT;
  stageBlock(children: StageBlockCstChildren, param?: IN): OUT;
  groupBlock(children: GroupBlockCstChildren, param?: IN): OUT;
  modifierBlock(children: ModifierBlockCstChildren, param?: IN): OUT;
  blockName(children: BlockNameCstChildren, param?: IN): OUT;
  entry(children: EntryCstChildren, param?: IN): OUT;
  value(children: ValueCstChildren, param?: IN): OUT;
  term(children: TermCstChildren, param?: IN): OUT;
  list(children: ListCstChildren, param?: IN): OUT;
  map(children: MapCstChildren, param?: IN): OUT;
}
