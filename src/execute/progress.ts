/**
 * Renders apply progress: a redrawn bar on a terminal, plain lines
 * otherwise (at most about a hundred), each with the time left, and the
 * end summary.
 */
import { formatBytes } from '../plan/estimate.js';
import type { ApplyEvent, ApplySummary } from './types.js';

/** `, about N s left` after `done` of `total` steps in `seconds`, at the pace so far; empty before the first step and after the last. */
export function timeLeft(seconds: number, done: number, total: number): string {
  return done > 0 && done < total ? `, about ${Math.round((seconds / done) * (total - done))} s left` : '';
}

/** Returns an event handler writing progress to `write`. */
export function progressPrinter(write: (text: string) => void, tty: boolean, now: () => number = () => performance.now()): (e: ApplyEvent) => void {
  let every = 1;
  let lastWidth = 0;
  let started = 0;
  const left = (index: number, total: number): string => timeLeft((now() - started) / 1000, index, total);
  return (e) => {
    switch (e.kind) {
      case 'start':
        started = now();
        every = Math.max(1, Math.ceil(e.modules / 100));
        write(`Quantizing ${e.modules} modules (${formatBytes(e.bytesIn)} of weights in)\n`);
        break;
      case 'module': {
        if (tty) {
          const width = 30;
          const filled = Math.round((e.index / e.total) * width);
          const line = `[${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${e.index}/${e.total} ${e.name}${left(e.index, e.total)}`;
          write(`\r${line}${' '.repeat(Math.max(0, lastWidth - line.length))}`);
          lastWidth = line.length;
          if (e.index === e.total) write('\n');
        } else if (e.index % every === 0 || e.index === e.total) {
          write(`quantized ${e.index}/${e.total} ${e.name}${left(e.index, e.total)}\n`);
        }
        break;
      }
      case 'write':
        write(`wrote ${e.file}\n`);
        break;
      case 'done':
        break;
    }
  };
}

/** The end summary block. */
export function formatSummary(s: ApplySummary, device: string): string {
  return [
    `Wrote ${s.outDir} in ${s.seconds.toFixed(1)} s`,
    `  weights      ${formatBytes(s.bytesIn)} -> ${formatBytes(s.bytesOut)} (${s.ratio.toFixed(2)}x smaller)`,
    `  modules      ${s.quantized} quantized, ${s.ignored} ignored`,
    `  weight pass  ${s.weightGBps.toFixed(2)} GB/s on ${device}${s.cpuThreads ? ` (round-to-nearest on ${s.cpuThreads} CPU thread${s.cpuThreads === 1 ? '' : 's'})` : ''}`,
    '',
  ].join('\n');
}
