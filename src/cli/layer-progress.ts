/**
 * Layer-by-layer progress on stderr with an estimate of the time left: one
 * redrawn line on a terminal, one line per layer otherwise (CI logs,
 * `nohup`, batch jobs), so that long runs always show they are alive.
 */
import type { CliIo } from './io.js';

/** A progress callback for `onLayerStart(layer, layers)`, and `done()` to clear a terminal line. */
export function layerStartProgress(io: CliIo, what: string): { readonly onLayerStart: (layer: number, layers: number) => void; readonly done: () => void } {
  const started = performance.now();
  return {
    onLayerStart: (layer, layers) => {
      const elapsed = (performance.now() - started) / 1000;
      const eta = layer > 0 ? `, about ${((elapsed / layer) * (layers - layer)).toFixed(0)} s left` : '';
      const line = `${what} layer ${layer + 1}/${layers}${eta}`;
      io.stderr(io.isTty ? `\r\x1b[K${line}` : `${line}\n`);
    },
    done: () => {
      if (io.isTty) io.stderr('\r\x1b[K');
    },
  };
}
