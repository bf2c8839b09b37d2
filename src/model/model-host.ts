/**
 * The file access the model loaders need, behind an interface so tests can
 * substitute an in-memory host. Every failure comes back as a diagnostic;
 * safetensors files are only ever read up to the end of their JSON header.
 */
import { closeSync, openSync, readFileSync, readSync, readdirSync, statSync } from 'node:fs';
import { error, type Diagnostic } from '../diagnostics.js';

/** Largest JSON file (config, index, module tree) a loader reads. */
export const MAX_JSON_BYTES = 512 * 1024 * 1024;

/** Largest safetensors header accepted (real headers are a few MiB at most). */
export const MAX_HEADER_BYTES = 256 * 1024 * 1024;

/** What a loader may ask of the file system. */
export interface ModelHost {
  /** `file`, `directory`, or undefined when nothing is there. */
  kind(path: string): 'file' | 'directory' | undefined;
  /** File names (not paths) in a directory; empty when unreadable. */
  list(dir: string): string[];
  /** A whole text file, or why it cannot be read. */
  readText(path: string): string | Diagnostic;
  /** The JSON header bytes of a safetensors file (without the 8-byte length), or why not. */
  readSafetensorsHeader(path: string): Uint8Array | Diagnostic;
}

/** True when a host result is a diagnostic. */
export function isHostDiagnostic<T>(x: T | Diagnostic): x is Diagnostic {
  return typeof x === 'object' && x !== null && 'code' in x && 'severity' in x;
}

function unreadable(path: string, e: unknown): Diagnostic {
  const code = (e as NodeJS.ErrnoException).code;
  const why = code === 'ENOENT' ? 'it does not exist' : code === 'EACCES' ? 'permission denied' : (e as Error).message;
  return error('model-file-unreadable', `Cannot read "${path}": ${why}.`);
}

/** The host that reads from disk. */
export const nodeModelHost: ModelHost = {
  kind(path) {
    try {
      const st = statSync(path);
      return st.isDirectory() ? 'directory' : st.isFile() ? 'file' : undefined;
    } catch {
      return undefined;
    }
  },
  list(dir) {
    try {
      return readdirSync(dir);
    } catch {
      return [];
    }
  },
  readText(path) {
    try {
      const size = statSync(path).size;
      if (size > MAX_JSON_BYTES) return error('model-file-unreadable', `The file "${path}" is ${size} bytes, too large for a JSON model description.`);
      return readFileSync(path, 'utf8').replace(/^\uFEFF/, '');
    } catch (e) {
      return unreadable(path, e);
    }
  },
  readSafetensorsHeader(path) {
    let fd: number | undefined;
    try {
      fd = openSync(path, 'r');
      const size = statSync(path).size;
      const head = Buffer.alloc(8);
      if (readSync(fd, head, 0, 8, 0) < 8) return badHeader(path, 'it is shorter than the 8-byte header length');
      const length = head.readBigUInt64LE(0);
      if (length === 0n || length > BigInt(Math.min(MAX_HEADER_BYTES, size - 8))) {
        return badHeader(path, `its header length ${length} does not fit the file`);
      }
      const header = Buffer.alloc(Number(length));
      if (readSync(fd, header, 0, header.length, 8) < header.length) return badHeader(path, 'its header is truncated');
      // A header that promises more data than the file holds (a truncated download or copy) fails here, not hours into a run.
      const end = dataEnd(header);
      if (end !== undefined && 8 + header.length + end > size) return badHeader(path, `its tensors end at byte ${8 + header.length + end} but the file has ${size} bytes (truncated?)`);
      return header;
    } catch (e) {
      return unreadable(path, e);
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  },
};

/** The largest `data_offsets` end a safetensors header names, or undefined when it does not parse (reported later). */
function dataEnd(header: Buffer): number | undefined {
  try {
    const json = JSON.parse(header.toString('utf8')) as Record<string, { data_offsets?: unknown }>;
    let end = 0;
    for (const [name, t] of Object.entries(json)) {
      if (name === '__metadata__' || !Array.isArray(t?.data_offsets)) continue;
      end = Math.max(end, Number(t.data_offsets[1]));
    }
    return end;
  } catch {
    return undefined;
  }
}

/** The diagnostic for a safetensors file whose header cannot be parsed. */
export function badHeader(path: string, why: string): Diagnostic {
  return error('safetensors-invalid-header', `"${path}" is not a valid safetensors file: ${why}.`);
}

/** An in-memory host for tests: paths map to text, or to safetensors header JSON via `headers`. */
export function memoryModelHost(files: Readonly<Record<string, string>>, headers: Readonly<Record<string, string>> = {}): ModelHost {
  const all = [...Object.keys(files), ...Object.keys(headers)];
  return {
    kind(path) {
      if (path in files || path in headers) return 'file';
      const dir = path.endsWith('/') ? path : `${path}/`;
      return all.some((p) => p.startsWith(dir)) ? 'directory' : undefined;
    },
    list(dir) {
      const prefix = dir.endsWith('/') ? dir : `${dir}/`;
      return all.filter((p) => p.startsWith(prefix) && !p.slice(prefix.length).includes('/')).map((p) => p.slice(prefix.length));
    },
    readText(path) {
      const text = files[path];
      return text ?? error('model-file-unreadable', `Cannot read "${path}": it does not exist.`);
    },
    readSafetensorsHeader(path) {
      const text = headers[path];
      return text === undefined ? error('model-file-unreadable', `Cannot read "${path}": it does not exist.`) : Buffer.from(text, 'utf8');
    },
  };
}
