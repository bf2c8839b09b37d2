/**
 * `numpy.random.default_rng(seed).permutation(n)`, bit for bit: the order
 * `datasets`' `Dataset.shuffle(seed=...)` gives the rows, and so the order
 * llm-compressor's examples calibrate in. Three pieces of numpy 2:
 * SeedSequence (the seed's entropy hashed into a pool, then into the
 * generator's 128-bit state and increment), PCG64 (XSL-RR 128/64; 32-bit
 * draws take the low then the high half of one 64-bit output), and
 * Generator.shuffle's Fisher-Yates with `random_interval` (masked rejection
 * sampling). 128-bit arithmetic runs on BigInt.
 */

const M32 = 0xffffffffn;
const M64 = (1n << 64n) - 1n;
const M128 = (1n << 128n) - 1n;
const MULT = 0x2360ed051fc65da44385df649fccf645n;

const INIT_A = 0x43b0d7e5;
const MULT_A = 0x931e8875;
const INIT_B = 0x8b51f9dd;
const MULT_B = 0x58f38ded;
const MIX_MULT_L = 0xca01f9dd;
const MIX_MULT_R = 0x4973f715;
const POOL_SIZE = 4;

/** The seed's 32-bit words, least significant first (numpy's `_coerce_to_uint32_array`). */
function seedWords(seed: bigint): number[] {
  if (seed === 0n) return [0];
  const words: number[] = [];
  for (let x = seed; x > 0n; x >>= 32n) words.push(Number(x & M32));
  return words;
}

/** numpy's SeedSequence(seed).generate_state(words, uint32). */
function seedSequenceState(seed: bigint, words: number): number[] {
  const entropy = seedWords(seed);
  let hashConst = INIT_A;
  const hashmix = (value: number): number => {
    let v = (value ^ hashConst) >>> 0;
    hashConst = Math.imul(hashConst, MULT_A) >>> 0;
    v = Math.imul(v, hashConst) >>> 0;
    return (v ^ (v >>> 16)) >>> 0;
  };
  const mix = (x: number, y: number): number => {
    const r = (Math.imul(MIX_MULT_L, x) - Math.imul(MIX_MULT_R, y)) >>> 0;
    return (r ^ (r >>> 16)) >>> 0;
  };
  const pool = Array.from({ length: POOL_SIZE }, (_, i) => hashmix(entropy[i] ?? 0));
  for (let src = 0; src < POOL_SIZE; src++) {
    for (let dst = 0; dst < POOL_SIZE; dst++) if (src !== dst) pool[dst] = mix(pool[dst]!, hashmix(pool[src]!));
  }
  for (let src = POOL_SIZE; src < entropy.length; src++) {
    for (let dst = 0; dst < POOL_SIZE; dst++) pool[dst] = mix(pool[dst]!, hashmix(entropy[src]!));
  }
  let constB = INIT_B;
  const state: number[] = [];
  for (let i = 0; i < words; i++) {
    let v = (pool[i % POOL_SIZE]! ^ constB) >>> 0;
    constB = Math.imul(constB, MULT_B) >>> 0;
    v = Math.imul(v, constB) >>> 0;
    state.push((v ^ (v >>> 16)) >>> 0);
  }
  return state;
}

/** numpy's PCG64 bit generator, seeded as `default_rng(seed)` seeds it. */
class Pcg64 {
  private state = 0n;
  private readonly inc: bigint;
  private buffered: number | undefined;

  constructor(seed: bigint) {
    const w = seedSequenceState(seed, 8).map(BigInt);
    // generate_state(4, uint64): little-endian pairs of 32-bit words.
    const u64 = [0, 1, 2, 3].map((i) => w[2 * i]! | (w[2 * i + 1]! << 32n));
    const initState = (u64[0]! << 64n) | u64[1]!;
    const initSeq = (u64[2]! << 64n) | u64[3]!;
    this.inc = ((initSeq << 1n) | 1n) & M128;
    this.step();
    this.state = (this.state + initState) & M128;
    this.step();
  }

  private step(): void {
    this.state = (this.state * MULT + this.inc) & M128;
  }

  next64(): bigint {
    this.step();
    const s = this.state;
    const x = ((s >> 64n) ^ s) & M64;
    const rot = s >> 122n;
    return ((x >> rot) | (x << ((64n - rot) & 63n))) & M64;
  }

  next32(): number {
    if (this.buffered !== undefined) {
      const v = this.buffered;
      this.buffered = undefined;
      return v;
    }
    const n = this.next64();
    this.buffered = Number(n >> 32n);
    return Number(n & M32);
  }
}

/** A uniform integer in [0, max] (numpy's `random_interval`). */
function randomInterval(rng: Pcg64, max: number): number {
  if (max === 0) return 0;
  if (max <= 0xffffffff) {
    let mask = max;
    for (const s of [1, 2, 4, 8, 16]) mask |= mask >>> s;
    mask >>>= 0;
    for (;;) {
      const v = (rng.next32() & mask) >>> 0;
      if (v <= max) return v;
    }
  }
  let mask = BigInt(max);
  for (const s of [1n, 2n, 4n, 8n, 16n, 32n]) mask |= mask >> s;
  for (;;) {
    const v = rng.next64() & mask;
    if (v <= BigInt(max)) return Number(v);
  }
}

/** `numpy.random.default_rng(seed).permutation(n)`; `seed` a non-negative integer. */
export function numpyPermutation(seed: bigint | number, n: number): number[] {
  const rng = new Pcg64(BigInt(seed));
  const out = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i >= 1; i--) {
    const j = randomInterval(rng, i);
    const t = out[i]!;
    out[i] = out[j]!;
    out[j] = t;
  }
  return out;
}
