/**
 * glibc's allocator settings for runs on CUDA. onnxruntime-node hands every
 * output back in a fresh buffer, and a GPTQ or AWQ layer's hidden-state stack
 * is a GiB or more: glibc maps each such block anew, and the kernel
 * zero-fills its pages one by one on first touch, so the copy off the card
 * ran at 1.5 GB/s (a 1 GiB output: 650–730 ms on an H100 host, 283 ms with
 * these settings; GPTQ on the 1B bench model 32.8 → 25.2 s). Served from
 * glibc's heap and kept there once freed, the next layer's stack reuses the
 * pages of the last. The cost: the process keeps its peak memory until it
 * exits (GPTQ's host peak 7.8 → 9.0 GiB in the same measurement).
 *
 * The launcher (src/cli/quantc.sh) sets these for commands that run on CUDA,
 * unless the user set any glibc allocator variable; `npm run bench` does
 * the same. glibc reads them only at process start.
 */

/** The environment: no block mapped on its own, and freed memory at the heap's top kept (up to 64 GiB). */
export const CUDA_HEAP_ENV: Readonly<Record<string, string>> = {
  MALLOC_MMAP_MAX_: '0',
  MALLOC_TRIM_THRESHOLD_: String(64 * 2 ** 30),
};

/** Whether command-line `args` run on CUDA: `--device cuda…` (`cuda`, `cuda:1`, `cuda:0,1`; also `--device=…`) or `--gpus`. */
export function runsOnCuda(args: readonly string[]): boolean {
  return args.some((arg, i) => (arg.startsWith('cuda') && args[i - 1] === '--device') || arg.startsWith('--device=cuda') || arg === '--gpus' || arg.startsWith('--gpus='));
}

/** The glibc allocator settings in `env`: its `MALLOC_…` variables and `GLIBC_TUNABLES`. */
export function heapSettings(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined && (e[0] === 'GLIBC_TUNABLES' || e[0].startsWith('MALLOC_'))));
}

/** Whether `env` leaves glibc's allocator as it starts: no `MALLOC_…` variable and no `GLIBC_TUNABLES` of the user's. */
export function heapUntuned(env: Readonly<Record<string, string | undefined>>): boolean {
  return Object.keys(heapSettings(env)).length === 0;
}
