/**
 * Tasks posted to a worker thread and answered by id, for the weight pass's
 * workers (loop-workers.ts) and the device workers (device-workers.ts). A
 * worker that dies fails its task and every later one, never hangs them;
 * only a worker with a task keeps the process alive (awaiting its reply
 * does not).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Worker } from 'node:worker_threads';

/** `script` (a worker module beside its caller, as `new URL('./x.js', import.meta.url)`) where it is built code, else null (sources run by tests). */
export function builtScript(script: URL): URL | null {
  return script.protocol === 'file:' && existsSync(fileURLToPath(script)) ? script : null;
}

/** A task as posted: without its id (each member of a union on its own). */
export type Unsent<T> = T extends unknown ? Omit<T, 'id'> : never;

export class WorkerChannel<Task extends { readonly id: number }, Reply extends { readonly id: number }> {
  private next = 0;
  private failed: Error | null = null;
  private readonly pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();

  /** `died` words the error of a worker that failed (`how`: what happened to it). */
  constructor(
    private readonly worker: Worker,
    died: (how: string) => Error,
  ) {
    worker.on('message', (reply: Reply) => {
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      if (this.pending.size === 0) worker.unref();
      p.resolve(reply);
    });
    const fail = (e: Error): void => {
      this.failed ??= e;
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
      worker.unref();
    };
    worker.on('error', (e) => fail(died(`failed: ${e.message}`)));
    worker.on('exit', (code) => fail(died(`stopped (exit code ${code})`)));
    worker.unref();
  }

  /** Whether the worker died (or was stopped): later tasks fail at once. */
  get dead(): boolean {
    return this.failed !== null;
  }

  /** Posts a task (its buffers in `transfer` moved, not copied) and resolves with the worker's reply. */
  post(task: Unsent<Task>, transfer: readonly ArrayBuffer[]): Promise<Reply> {
    if (this.failed) return Promise.reject(this.failed);
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.ref();
      this.worker.postMessage({ ...task, id }, [...transfer]);
    });
  }

  /** Stops the thread: its exit fails any later task. */
  async terminate(): Promise<void> {
    await this.worker.terminate();
  }
}
