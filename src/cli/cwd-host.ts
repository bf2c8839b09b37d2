/**
 * A SourceHost that resolves relative paths against the CLI's working
 * directory but keeps the path as the user typed it, so diagnostics print
 * `recipes/x.yaml:3:5` rather than an absolute path.
 */
import { isAbsolute, resolve } from 'node:path';
import { isDiagnostic, nodeSourceHost, type SourceHost } from '../source-host.js';

/** The disk host relative to `cwd`. */
export function cwdSourceHost(cwd: string): SourceHost {
  return {
    read(path: string) {
      const absolute = isAbsolute(path) ? path : resolve(cwd, path);
      const result = nodeSourceHost.read(absolute);
      return isDiagnostic(result) ? { ...result, message: result.message.split(absolute).join(path) } : { ...result, path };
    },
  };
}
