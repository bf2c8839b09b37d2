/**
 * Runtimes that share out work: each runs one task at a time; a task waits
 * for the first free runtime, in the order tasks were submitted. One runtime
 * per device spreads a weight pass over every GPU of a host.
 */
import type { GraphRuntime } from './runtime.js';

/** A fixed set of runtimes lent to tasks one at a time. */
export class RuntimePool {
  private readonly free: GraphRuntime[];
  private readonly waiting: ((rt: GraphRuntime) => void)[] = [];
  /** How many tasks each runtime ran, by position (for tests and reports). */
  readonly tasks: number[];

  constructor(readonly runtimes: readonly GraphRuntime[]) {
    if (runtimes.length === 0) throw new Error('runtime pool: no runtime');
    this.free = [...runtimes];
    this.tasks = runtimes.map(() => 0);
  }

  /** Runs `task` on the first free runtime and gives the runtime back when it settles. */
  async run<T>(task: (rt: GraphRuntime) => Promise<T>): Promise<T> {
    const rt = this.free.shift() ?? (await new Promise<GraphRuntime>((resolve) => this.waiting.push(resolve)));
    this.tasks[this.runtimes.indexOf(rt)]!++;
    try {
      return await task(rt);
    } finally {
      const next = this.waiting.shift();
      if (next) next(rt);
      else this.free.push(rt);
    }
  }

  /** Releases every runtime's sessions. */
  async dispose(): Promise<void> {
    for (const rt of this.runtimes) await rt.dispose();
  }
}
