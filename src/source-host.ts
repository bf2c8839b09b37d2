/**
 * Reads input files for the front ends and loaders, turning every way a
 * file can be unusable into a diagnostic instead of an exception.
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { error, type Diagnostic } from './diagnostics.js';
import type { Source } from './source.js';

/** Largest recipe file quantc reads. Real recipes are a few KiB. */
export const MAX_SOURCE_BYTES = 4 * 1024 * 1024;

/** Reads files for the front ends; tests substitute an in-memory host. */
export interface SourceHost {
  /** Reads a text file, or returns the diagnostic that says why it cannot. */
  read(path: string): Source | Diagnostic;
}

/** True when a read result is a diagnostic rather than a source. */
export function isDiagnostic(x: Source | Diagnostic): x is Diagnostic {
  return (x as Diagnostic).code !== undefined;
}

/** Checks that text looks like a text file: no NUL bytes, valid UTF-8. */
export function textProblem(path: string, bytes: Uint8Array, maxBytes = MAX_SOURCE_BYTES): Diagnostic | undefined {
  if (bytes.length === 0) return error('file-empty', `The file "${path}" is empty.`);
  if (bytes.length > maxBytes) {
    return error('file-too-large', `The file "${path}" is ${bytes.length} bytes; recipes are limited to ${maxBytes} bytes.`);
  }
  if (bytes.includes(0)) return error('file-binary', `The file "${path}" is binary, not a text recipe.`);
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return error('file-binary', `The file "${path}" is not valid UTF-8 text.`);
  }
  return undefined;
}

/**
 * Reads at most `limit` bytes. A device or pipe reports size 0 to stat, so the
 * size check alone would let `/dev/zero` be read until memory runs out.
 */
function readAtMost(path: string, limit: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    while (total < limit) {
      const chunk = Buffer.allocUnsafe(Math.min(1 << 16, limit - total));
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      total += n;
    }
    return Buffer.concat(chunks, total);
  } finally {
    closeSync(fd);
  }
}

/** The host that reads from disk. */
export const nodeSourceHost: SourceHost = {
  read(path: string): Source | Diagnostic {
    let bytes: Buffer;
    try {
      const st = statSync(path);
      if (st.isDirectory()) return error('file-unreadable', `"${path}" is a directory, not a file.`);
      if (st.size > MAX_SOURCE_BYTES) {
        return error('file-too-large', `The file "${path}" is ${st.size} bytes; recipes are limited to ${MAX_SOURCE_BYTES} bytes.`);
      }
      bytes = readAtMost(path, MAX_SOURCE_BYTES + 1);
      if (bytes.length > MAX_SOURCE_BYTES) {
        return error('file-too-large', `The file "${path}" is larger than ${MAX_SOURCE_BYTES} bytes; recipes are limited to ${MAX_SOURCE_BYTES} bytes.`);
      }
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'it does not exist' : code === 'EACCES' ? 'permission denied' : (e as Error).message;
      return error('file-unreadable', `Cannot read "${path}": ${why}.`);
    }
    const problem = textProblem(path, bytes);
    if (problem) return problem;
    return { path, text: bytes.toString('utf8').replace(/^\uFEFF/, '') };
  },
};

/** An in-memory host for tests and embedded sources. */
export function memorySourceHost(files: Readonly<Record<string, string>>, fallback?: SourceHost): SourceHost {
  return {
    read(path: string) {
      const text = files[path];
      if (text !== undefined) {
        const problem = textProblem(path, Buffer.from(text, 'utf8'));
        return problem ?? { path, text };
      }
      return fallback ? fallback.read(path) : error('file-unreadable', `Cannot read "${path}": it does not exist.`);
    },
  };
}
