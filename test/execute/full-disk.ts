/**
 * `node:fs/promises` with a disk that fills up: while `full()` says so, a
 * safetensors file opened for writing (`wx`) fails its fourth write with
 * ENOSPC. For `vi.mock('node:fs/promises', …)` factories.
 */
type FsPromises = typeof import('node:fs/promises');

export function fillingDisk(actual: FsPromises, full: () => boolean): FsPromises {
  return {
    ...actual,
    open: async (...args: Parameters<FsPromises['open']>) => {
      const fh = await actual.open(...args);
      if (full() && String(args[0]).endsWith('.safetensors') && args[1] === 'wx') {
        let writes = 0;
        const write = fh.write.bind(fh) as (...a: unknown[]) => Promise<unknown>;
        (fh as unknown as { write: (...a: unknown[]) => Promise<unknown> }).write = async (...a: unknown[]) => {
          if (++writes > 3) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
          return write(...a);
        };
      }
      return fh;
    },
  };
}
