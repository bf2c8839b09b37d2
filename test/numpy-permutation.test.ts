/** numpy's default_rng(seed).permutation(n), against numpy's own output (test/fixtures/hub/refs.json). */
import { readFileSync } from 'node:fs';
import { expect, test } from 'vitest';
import { numpyPermutation } from '../src/execute/calibrate/numpy-permutation.js';

const refs = JSON.parse(readFileSync('test/fixtures/hub/refs.json', 'utf8')) as { permutations: { seed: string; n: number; permutation: number[] }[] };

test.each(refs.permutations.map((p) => [p.seed, p.n, p.permutation] as const))('seed %s, n %s', (seed, n, permutation) => {
  expect(numpyPermutation(BigInt(seed), n)).toEqual(permutation);
});

test('a permutation of 200k rows takes well under a second', () => {
  const started = performance.now();
  const p = numpyPermutation(42n, 200_000);
  expect(new Set(p).size).toBe(200_000);
  expect(performance.now() - started).toBeLessThan(2000);
});
