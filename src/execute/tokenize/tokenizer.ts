/**
 * Tokenization with a model's own `tokenizer.json` (plus
 * `tokenizer_config.json` when present), through `@huggingface/tokenizers`:
 * a dependency-free JavaScript implementation of the Hugging Face tokenizers
 * pipeline (normalizers, pre-tokenizers, BPE / WordPiece / Unigram models)
 * that runs offline. Text is encoded without special tokens unless asked.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Encodes text to token ids. */
export interface TextTokenizer {
  /** Token ids of `text`, without special tokens unless `addSpecialTokens` (the tokenizer's post-processor, e.g. a BOS token). */
  encode(text: string, addSpecialTokens?: boolean): number[];
}

/** The model folder has no usable tokenizer; the message names the file. */
export class TokenizerError extends Error {}

/** Loads the tokenizer of model folder `dir`. */
export async function loadTokenizer(dir: string): Promise<TextTokenizer> {
  const path = join(dir, 'tokenizer.json');
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message;
    throw new TokenizerError(`cannot read ${path}: ${why}`);
  }
  let config: unknown = {};
  try {
    config = JSON.parse(await readFile(join(dir, 'tokenizer_config.json'), 'utf8'));
  } catch {
    config = {};
  }
  const { Tokenizer } = await import('@huggingface/tokenizers');
  let tokenizer: InstanceType<typeof Tokenizer>;
  try {
    tokenizer = new Tokenizer(json as object, config as object);
  } catch (e) {
    throw new TokenizerError(`${path}: ${(e as Error).message}`);
  }
  return { encode: (text, addSpecialTokens = false) => tokenizer.encode(text, { add_special_tokens: addSpecialTokens }).ids };
}
