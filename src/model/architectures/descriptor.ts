/**
 * The shape of an architecture descriptor: data about one transformers
 * `model_type` (its causal-LM class, the config class defaults it relies
 * on) plus the walk that expands a config into the in-memory module tree.
 */
import type { ModelBuilder } from './blocks.js';

/** One supported `model_type`. */
export interface ArchitectureDescriptor {
  /** The `model_type` in `config.json`. */
  readonly modelType: string;
  /** The class `AutoModelForCausalLM` builds, e.g. `LlamaForCausalLM`. */
  readonly causalLm: string;
  /** Config class defaults for keys a published config.json may omit. */
  readonly defaults: Readonly<Record<string, unknown>>;
  /** The config class's `attribute_map`, both directions: a key → the other spelling. */
  readonly aliases?: Readonly<Record<string, string>>;
  /** Adds every module and parameter, in `named_modules()` order. */
  readonly build: (m: ModelBuilder) => void;
}
