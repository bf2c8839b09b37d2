/**
 * Reads calibration or evaluation text: a JSON Lines file (`.jsonl`) of
 * objects with a `text` field, joined with blank lines, or any other file
 * as plain UTF-8 text.
 */
import { readFile } from 'node:fs/promises';

/** The data file is unreadable or malformed; the message names the file and line. */
export class DataFileError extends Error {}

/** The text of `path`. */
export async function readTextData(path: string): Promise<string> {
  let raw: string;
  try {
    raw = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new DataFileError(`cannot read ${path}: ${code === 'ENOENT' ? 'it does not exist' : code === 'EISDIR' ? 'it is a directory' : (e as Error).message}`);
  }
  if (!path.endsWith('.jsonl')) return raw;
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
  return texts.join('\n\n');
}
