/**
 * Reads calibration or evaluation text: a JSON Lines file (`.jsonl`) of
 * objects with a `text` field (kept apart, or joined with blank lines), or
 * any other file as plain UTF-8 text.
 */
import { readFile } from 'node:fs/promises';

/** The data file is unreadable or malformed; the message names the file and line. */
export class DataFileError extends Error {}

/** The text of `path`. */
export async function readTextData(path: string): Promise<string> {
  const data = await readTextRecords(path);
  return data.kind === 'text' ? data.text : data.records.join('\n\n');
}

/** A data file as read: one plain text, or the `text` of each JSON Lines record. */
export type TextRecords = { readonly kind: 'text'; readonly text: string } | { readonly kind: 'records'; readonly records: readonly string[] };

/** The contents of `path`, keeping JSON Lines records apart. */
export async function readTextRecords(path: string): Promise<TextRecords> {
  let raw: string;
  try {
    raw = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new DataFileError(`cannot read ${path}: ${code === 'ENOENT' ? 'it does not exist' : code === 'EISDIR' ? 'it is a directory' : (e as Error).message}`);
  }
  if (raw.includes('\u0000')) throw new DataFileError(`${path} is not a text file (it contains NUL bytes)`);
  if (!path.endsWith('.jsonl')) return { kind: 'text', text: raw };
  const texts: string[] = [];
  raw.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch {
      throw new DataFileError(`${path}:${i + 1}: not a JSON object`);
    }
    const text = (obj as { text?: unknown } | null)?.text;
    if (typeof text !== 'string') throw new DataFileError(`${path}:${i + 1}: no "text" string field`);
    texts.push(text);
  });
  return { kind: 'records', records: texts };
}
