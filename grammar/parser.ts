/**
 * The grammar of the quantc recipe language, as a Chevrotain CstParser.
 * Grammar only: no actions. `src/parse/dsl-visitor.ts` turns the CST into a
 * syntax tree. Each rule's JSDoc carries its EBNF production, which
 * `grammar/README.md` repeats with examples.
 */
import { CstParser } from './chevrotain.js';
import { recipeErrorMessages } from './messages.js';
import * as T from './tokens.js';

/** The recipe language parser. Build one and reuse it (`parser.input = tokens`). */
export class RecipeParser extends CstParser {
  /**
   * `validate` runs Chevrotain's grammar checks (ambiguities, left recursion). They cost a large
   * part of construction time, so the CLI skips them and the grammar tests run them.
   */
  constructor({ validate = false }: { validate?: boolean } = {}) {
    super([...T.allTokens], {
      skipValidations: !validate,
      recoveryEnabled: true,
      nodeLocationTracking: 'onlyOffset',
      maxLookahead: 3,
      errorMessageProvider: recipeErrorMessages,
    });
    this.performSelfAnalysis();
  }

  /** recipeFile = { topItem } ; */
  public recipeFile = this.RULE('recipeFile', () => {
    this.MANY(() => this.SUBRULE(this.topItem));
  });

  /** header = "recipe" , [ string ] , [ "version" , string ] ; */
  public header = this.RULE('header', () => {
    this.CONSUME(T.Recipe);
    this.OPTION(() => this.CONSUME(T.StringLiteral, { LABEL: 'name' }));
    this.OPTION2(() => {
      this.CONSUME(T.Version);
      this.CONSUME2(T.StringLiteral, { LABEL: 'version' });
    });
  });

  /** topItem = header | modelDecl | importDecl | letDecl | moeBlock | argsBlock | stageBlock ; */
  public topItem = this.RULE('topItem', () => {
    this.OR([
      { ALT: () => this.SUBRULE(this.header) },
      { ALT: () => this.SUBRULE(this.modelDecl) },
      { ALT: () => this.SUBRULE(this.importDecl) },
      { ALT: () => this.SUBRULE(this.letDecl) },
      { ALT: () => this.SUBRULE(this.moeBlock) },
      { ALT: () => this.SUBRULE(this.argsBlock) },
      { ALT: () => this.SUBRULE(this.stageBlock) },
    ]);
  });

  /** modelDecl = "model" , string ; */
  public modelDecl = this.RULE('modelDecl', () => {
    this.CONSUME(T.Model);
    this.CONSUME(T.StringLiteral);
  });

  /** importDecl = "import" , string ; */
  public importDecl = this.RULE('importDecl', () => {
    this.CONSUME(T.Import);
    this.CONSUME(T.StringLiteral);
  });

  /** letDecl = "let" , name , "=" , value ; */
  public letDecl = this.RULE('letDecl', () => {
    this.CONSUME(T.Let);
    this.CONSUME(T.Name);
    this.CONSUME(T.Equals);
    this.SUBRULE(this.value);
  });

  /** moeBlock = "moe" , "{" , { rewriteBlock | entry } , "}" ; */
  public moeBlock = this.RULE('moeBlock', () => {
    this.CONSUME(T.Moe);
    this.CONSUME(T.LCurly);
    this.MANY(() =>
      this.OR([
        // `rewrite = …` is an entry; `rewrite Class {` starts a block.
        { GATE: () => this.LA(2).tokenType !== T.Equals, ALT: () => this.SUBRULE(this.rewriteBlock) },
        { ALT: () => this.SUBRULE(this.entry) },
      ]),
    );
    this.CONSUME(T.RCurly);
  });

  /** rewriteBlock = "rewrite" , blockName , "{" , { entry } , "}" ; */
  public rewriteBlock = this.RULE('rewriteBlock', () => {
    this.CONSUME(T.Rewrite);
    this.SUBRULE(this.blockName);
    this.CONSUME(T.LCurly);
    this.MANY(() => this.SUBRULE(this.entry));
    this.CONSUME(T.RCurly);
  });

  /** argsBlock = "args" , "{" , { entry } , "}" ; */
  public argsBlock = this.RULE('argsBlock', () => {
    this.CONSUME(T.Args);
    this.CONSUME(T.LCurly);
    this.MANY(() => this.SUBRULE(this.entry));
    this.CONSUME(T.RCurly);
  });

  /** stageBlock = "stage" , blockName , "{" , { groupBlock | modifierBlock } , "}" ; */
  public stageBlock = this.RULE('stageBlock', () => {
    this.CONSUME(T.Stage);
    this.SUBRULE(this.blockName);
    this.CONSUME(T.LCurly);
    this.MANY(() =>
      this.OR([{ ALT: () => this.SUBRULE(this.groupBlock) }, { ALT: () => this.SUBRULE(this.modifierBlock) }]),
    );
    this.CONSUME(T.RCurly);
  });

  /** groupBlock = "group" , blockName , "{" , { modifierBlock } , "}" ; */
  public groupBlock = this.RULE('groupBlock', () => {
    this.CONSUME(T.Group);
    this.SUBRULE(this.blockName);
    this.CONSUME(T.LCurly);
    this.MANY(() => this.SUBRULE(this.modifierBlock));
    this.CONSUME(T.RCurly);
  });

  /** modifierBlock = ( identifier | string ) , "{" , { entry } , "}" ; */
  public modifierBlock = this.RULE('modifierBlock', () => {
    this.OR([{ ALT: () => this.CONSUME(T.Identifier) }, { ALT: () => this.CONSUME(T.StringLiteral) }]);
    this.CONSUME(T.LCurly);
    this.MANY(() => this.SUBRULE(this.entry));
    this.CONSUME(T.RCurly);
  });

  /** blockName = name | string ; */
  public blockName = this.RULE('blockName', () => {
    this.OR([{ ALT: () => this.CONSUME(T.Name) }, { ALT: () => this.CONSUME(T.StringLiteral) }]);
  });

  /** entry = ( name | string ) , "=" , value , [ "," ] ; */
  public entry = this.RULE('entry', () => {
    this.OR([{ ALT: () => this.CONSUME(T.Name, { LABEL: 'key' }) }, { ALT: () => this.CONSUME(T.StringLiteral, { LABEL: 'key' }) }]);
    this.CONSUME(T.Equals);
    this.SUBRULE(this.value);
    this.OPTION(() => this.CONSUME(T.Comma));
  });

  /** value = term , { "+" , term } ; */
  public value = this.RULE('value', () => {
    this.SUBRULE(this.term);
    this.MANY(() => {
      this.CONSUME(T.Plus);
      this.SUBRULE2(this.term);
    });
  });

  /** term = string | regex | integer | float | "true" | "false" | "null" | name | list | map ; */
  public term = this.RULE('term', () => {
    this.OR([
      { ALT: () => this.CONSUME(T.StringLiteral) },
      { ALT: () => this.CONSUME(T.RegexLiteral) },
      { ALT: () => this.CONSUME(T.IntegerLiteral) },
      { ALT: () => this.CONSUME(T.FloatLiteral) },
      { ALT: () => this.CONSUME(T.True) },
      { ALT: () => this.CONSUME(T.False) },
      { ALT: () => this.CONSUME(T.Null) },
      { ALT: () => this.CONSUME(T.Name) },
      { ALT: () => this.SUBRULE(this.list) },
      { ALT: () => this.SUBRULE(this.map) },
    ]);
  });

  /** list = "[" , [ value , { "," , value } , [ "," ] ] , "]" ; */
  public list = this.RULE('list', () => {
    this.CONSUME(T.LSquare);
    this.OPTION(() => {
      this.SUBRULE(this.value);
      this.MANY({
        // A comma followed by "]" is the optional trailing comma, not a separator.
        GATE: () => this.LA(2).tokenType !== T.RSquare,
        DEF: () => {
          this.CONSUME(T.Comma);
          this.SUBRULE2(this.value);
        },
      });
      this.OPTION2(() => this.CONSUME2(T.Comma));
    });
    this.CONSUME(T.RSquare);
  });

  /** map = "{" , { entry } , "}" ; */
  public map = this.RULE('map', () => {
    this.CONSUME(T.LCurly);
    this.MANY(() => this.SUBRULE(this.entry));
    this.CONSUME(T.RCurly);
  });
}

let shared: RecipeParser | undefined;

/** The one parser instance, built on first use (self-analysis is the costly part). */
export function recipeParser(): RecipeParser {
  shared ??= new RecipeParser();
  return shared;
}

