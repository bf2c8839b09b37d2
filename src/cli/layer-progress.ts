/**
 * Layer-by-layer progress on stderr with an estimate of the time left: one
 * redrawn line on a terminal, one line per layer otherwise (CI logs,
 * `nohup`, batch jobs), so that long runs always show they are alive.
 */
import { timeLeft } from '../execute/progress.js';
import type { CliIo } from './io.js';

/** A progress callback for `onLayerStart(layer, layers)`, and `done()` to clear a terminal line. */
export function layerStartProgress(io: CliIo, what: string): { readonly onLayerStart: (layer: number, layers: number) => void; readonly done: () => void } {
  const started = performance.now();
  return {
    onLayerStart: (layer, layers) => {
      const line = `${what} layer ${layer + 1}/${layers}${timeLeft((performance.now() - started) / 1000, layer, layers)}`;
      io.stderr(io.isTty ? `\r\x1b[K${line}` : `${line}\n`);
    },
    done: () => {
      if (io.isTty) io.stderr('\r\x1b[K');
    },
  };
}
