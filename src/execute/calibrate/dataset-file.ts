/**
 * Calibration data as llm-compressor users have it: JSON Lines (`.jsonl`,
 * or `.json` holding JSON Lines or one array), Parquet (`.parquet`, as
 * `datasets`' `to_parquet` and the Hub's parquet conversion write it, read
 * with hyparquet and its codecs), Arrow IPC (`.arrow`, or a folder `datasets`'
 * `save_to_disk` wrote: its `data-*.arrow` stream files in `state.json`'s
 * order, read with apache-arrow), or any other file as plain text. Each row
 * is one record: `text`, else chat `messages`, else `prompt` + `completion`
 * (joined as llm-compressor's dataset templates join them: the prompt, then
 * the completion, nothing between; as message lists, one conversation).
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DataFileError, readTextRecords } from './text-data.js';

/** A conversation: rendered with the model's chat template. */
export interface ChatRecord {
  readonly messages: readonly unknown[];
}

/** One record: a text (tokenized with the tokenizer's special tokens) or a conversation. */
export type DataRecord = string | ChatRecord;

/** A calibration file as read: one plain text, or records. */
export type CalibrationData = { readonly kind: 'text'; readonly text: string } | { readonly kind: 'records'; readonly records: readonly DataRecord[] };

/** The record of one row; `where` names it in errors. */
export function rowRecord(row: unknown, where: string): DataRecord {
  const r = (typeof row === 'object' && row !== null ? row : {}) as Record<string, unknown>;
  if (typeof r['text'] === 'string') return r['text'];
  if (Array.isArray(r['messages'])) return { messages: r['messages'] };
  const { prompt, completion } = r;
  if (typeof prompt === 'string' && typeof completion === 'string') return prompt + completion;
  if (Array.isArray(prompt) && Array.isArray(completion)) return { messages: [...prompt, ...completion] };
  throw new DataFileError(`${where}: a record needs a "text" string, "messages", or "prompt" and "completion"`);
}

/** JSON replacer: Arrow's 64-bit integers as numbers. */
const plain = (_key: string, value: unknown): unknown => (typeof value === 'bigint' ? Number(value) : value);

async function readJsonRecords(path: string): Promise<DataRecord[]> {
  const raw = await readFile(path, 'utf8');
  if (raw.includes('\u0000')) throw new DataFileError(`${path} is not a text file (it contains NUL bytes)`);
  if (path.endsWith('.json') && raw.trimStart().startsWith('[')) {
    let rows: unknown;
    try {
      rows = JSON.parse(raw);
    } catch (e) {
      throw new DataFileError(`${path}: not valid JSON (${(e as Error).message})`);
    }
    return (rows as unknown[]).map((row, i) => rowRecord(row, `${path}: record ${i + 1}`));
  }
  const records: DataRecord[] = [];
  raw.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch {
      throw new DataFileError(`${path}:${i + 1}: not a JSON object`);
    }
    records.push(rowRecord(row, `${path}:${i + 1}`));
  });
  return records;
}

async function readParquetRecords(path: string): Promise<DataRecord[]> {
  const { asyncBufferFromFile, parquetReadObjects } = await import('hyparquet');
  // zstd (polars' default), gzip, brotli, lz4; snappy is built into hyparquet.
  const { compressors } = await import('hyparquet-compressors');
  let rows: Record<string, unknown>[];
  try {
    rows = await parquetReadObjects({ file: await asyncBufferFromFile(path), compressors });
  } catch (e) {
    throw new DataFileError(`${path} is not a Parquet file quantc can read (${(e as Error).message})`);
  }
  return rows.map((row, i) => rowRecord(JSON.parse(JSON.stringify(row, plain)), `${path}: row ${i + 1}`));
}

async function readArrowRecords(path: string): Promise<DataRecord[]> {
  const { tableFromIPC } = await import('apache-arrow');
  let rows: unknown[];
  try {
    const table = tableFromIPC(await readFile(path));
    // apache-arrow reads bytes that are not Arrow as an empty table with no columns.
    if (table.schema.fields.length === 0) throw new Error('no Arrow schema in it');
    rows = table.toArray() as unknown[];
  } catch (e) {
    throw new DataFileError(`${path} is not an Arrow IPC file quantc can read (${(e as Error).message})`);
  }
  return rows.map((row, i) => rowRecord(JSON.parse(JSON.stringify(row, plain)), `${path}: row ${i + 1}`));
}

/** The Arrow files of a `save_to_disk` folder, in order: `state.json`'s `_data_files`, else `data-*.arrow` sorted. */
async function savedArrowFiles(dir: string): Promise<string[]> {
  const names = await readdir(dir);
  if (names.includes('dataset_dict.json')) {
    const splits = names.filter((n) => !n.includes('.'));
    if (!splits.includes('train')) throw new DataFileError(`${dir} is a DatasetDict with splits ${splits.join(', ')}; pass one split's folder`);
    return savedArrowFiles(join(dir, 'train'));
  }
  try {
    const state = JSON.parse(await readFile(join(dir, 'state.json'), 'utf8')) as { _data_files?: { filename?: unknown }[] };
    const files = (state._data_files ?? []).map((f) => f.filename).filter((f): f is string => typeof f === 'string');
    if (files.length > 0) return files.map((f) => join(dir, f));
  } catch {
    // No state.json: the data files by name.
  }
  const files = names.filter((n) => /^data-.*\.arrow$/.test(n)).sort();
  if (files.length === 0) throw new DataFileError(`${dir} is a folder without data-*.arrow files; pass a file, or a folder written by datasets' save_to_disk`);
  return files.map((f) => join(dir, f));
}

/** The calibration data in `path` (see the module comment). */
export async function readCalibrationData(path: string): Promise<CalibrationData> {
  let isDir: boolean;
  try {
    isDir = (await stat(path)).isDirectory();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new DataFileError(`cannot read ${path}: ${code === 'ENOENT' ? 'it does not exist' : (e as Error).message}`);
  }
  if (isDir) {
    const records: DataRecord[] = [];
    for (const file of await savedArrowFiles(path)) records.push(...(await readArrowRecords(file)));
    return { kind: 'records', records };
  }
  if (path.endsWith('.parquet')) return { kind: 'records', records: await readParquetRecords(path) };
  if (path.endsWith('.arrow')) return { kind: 'records', records: await readArrowRecords(path) };
  if (path.endsWith('.jsonl') || path.endsWith('.json')) return { kind: 'records', records: await readJsonRecords(path) };
  const text = await readTextRecords(path);
  return text.kind === 'text' ? text : { kind: 'records', records: text.records };
}
