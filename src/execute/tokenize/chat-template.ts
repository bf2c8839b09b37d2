/**
 * A model's chat template, rendered as transformers' `apply_chat_template(
 * messages, tokenize=False)` renders it: the template from
 * `chat_template.jinja` (transformers 5's layout), else `chat_template.json`,
 * else `tokenizer_config.json`'s `chat_template` (a string, or a list of
 * named templates of which "default" is used), through `@huggingface/jinja`
 * (Hugging Face's Jinja for exactly these templates, with transformers'
 * `trim_blocks` / `lstrip_blocks`, `raise_exception` and `strftime_now`).
 * The special tokens (`bos_token`, `eos_token`, …) are passed as
 * transformers passes its `special_tokens_map`.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Renders conversations to the text the model was trained on. */
export interface ChatTemplate {
  /** Where the template came from (a file name), for messages. */
  readonly source: string;
  /** The text of `messages`, without a generation prompt. */
  render(messages: readonly unknown[]): string;
}

/** The template cannot be read or fails on a conversation; the message says which. */
export class ChatTemplateError extends Error {}

const SPECIAL_TOKENS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'];

async function readJson(path: string): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const json = JSON.parse(text) as unknown;
    return typeof json === 'object' && json !== null && !Array.isArray(json) ? (json as Record<string, unknown>) : undefined;
  } catch (e) {
    throw new ChatTemplateError(`${path} is not valid JSON: ${(e as Error).message}`);
  }
}

/** A special token as tokenizer files store it: a string or an AddedToken object with `content`. */
function tokenText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  const content = (value as { content?: unknown } | null)?.content;
  return typeof content === 'string' ? content : undefined;
}

/** The template text of a `chat_template` field: a string, or the "default" of a list of named templates. */
function templateField(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const named = value.find((t) => (t as { name?: unknown }).name === 'default') as { template?: unknown } | undefined;
    return typeof named?.template === 'string' ? named.template : undefined;
  }
  return undefined;
}

/** The chat template of model folder `dir`, or undefined when it has none. */
export async function loadChatTemplate(dir: string): Promise<ChatTemplate | undefined> {
  const config = (await readJson(join(dir, 'tokenizer_config.json'))) ?? {};
  let source = 'chat_template.jinja';
  let text: string | undefined;
  try {
    text = await readFile(join(dir, source), 'utf8');
  } catch {
    source = 'chat_template.json';
    text = templateField((await readJson(join(dir, source)))?.['chat_template']);
    if (text === undefined) {
      source = 'tokenizer_config.json';
      text = templateField(config['chat_template']);
    }
  }
  if (text === undefined) return undefined;
  const legacy = (await readJson(join(dir, 'special_tokens_map.json'))) ?? {};
  const specials: Record<string, string> = {};
  for (const key of SPECIAL_TOKENS) {
    const value = tokenText(config[key]) ?? tokenText(legacy[key]);
    if (value !== undefined) specials[key] = value;
  }
  const { Template } = await import('@huggingface/jinja');
  let template: InstanceType<typeof Template>;
  try {
    template = new Template(text);
  } catch (e) {
    throw new ChatTemplateError(`the chat template in ${join(dir, source)} does not parse: ${(e as Error).message}`);
  }
  return {
    source: join(dir, source),
    render(messages) {
      try {
        return template.render({ ...specials, messages, tools: null, documents: null, add_generation_prompt: false });
      } catch (e) {
        throw new ChatTemplateError(`the chat template in ${join(dir, source)} failed: ${(e as Error).message}`);
      }
    },
  };
}
