/**
 * Runtimes that share out work: each runs one task at a time; a task waits
 * for the first free runtime, in the order tasks were submitted. One runtime
 * per device spreads a weight pass over every GPU of a host; one per worker
 * thread over the cores.
 */

/** A fixed set of runtimes lent to tasks one at a time. */
export class RuntimePool<T> {
  private readonly free: T[];
  private readonly waiting: ((rt: T) => void)[] = [];
  /** How many tasks each runtime ran, by position (for tests and reports). */
  readonly tasks: number[];

  constructor(readonly runtimes: readonly T[]) {
    if (runtimes.length === 0) throw new Error('runtime pool: no runtime');
    this.free = [...runtimes];
    this.tasks = runtimes.map(() => 0);
  }

  /** Runs `task` on the first free runtime and gives the runtime back when it settles. */
  async run<R>(task: (rt: T) => Promise<R>): Promise<R> {
    const rt = this.free.shift() ?? (await new Promise<T>((resolve) => this.waiting.push(resolve)));
    this.tasks[this.runtimes.indexOf(rt)]!++;
    try {
      return await task(rt);
    } finally {
      const next = this.waiting.shift();
      if (next) next(rt);
      else this.free.push(rt);
    }
  }
}
