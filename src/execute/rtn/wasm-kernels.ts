/**
 * Round-to-nearest kernels for raw bf16 weights in WebAssembly, which V8
 * runs several times faster than JavaScript over typed arrays: FP8 E4M3
 * codes (`fp8(clip(bf16(|x| / s), 448))`, the weight's sign; eight at a
 * time with SIMD, else one at a time), each group's largest magnitude for
 * the symmetric schemes' observers, symmetric 4-bit codes packed into int32
 * words, and NVFP4's E2M1 codes packed two to a byte. Each computes what
 * the table walks of cpu-kernel.ts compute, which stay the fallback (no WebAssembly or SIMD, `QUANTC_WASM=0`): tested equal
 * for every bf16 pattern. The modules are a few hundred bytes written here,
 * so there is nothing to build or ship.
 */

/** The parts of the WebAssembly API used here (the compiler's libraries here do not declare it). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  readonly Module: new (bytes: Uint8Array) => object;
  readonly Instance: new (module: object) => { readonly exports: Record<string, unknown> };
}

/** Elements per call into the module: its memory stays a few MiB whatever the weight. */
const CHUNK_ELEMENTS = 1 << 20;

/** Unsigned LEB128, as the binary format writes sizes and indices. */
function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 (`i32.const` immediates). */
function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

/** A module section: its id, then its size. */
function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

/** The WebAssembly 1.0 instructions the kernels use, with their immediates. */
const op = {
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  end: [0x0b],
  br: (d: number) => [0x0c, d],
  brIf: (d: number) => [0x0d, d],
  select: [0x1b],
  get: (l: number) => [0x20, l],
  set: (l: number) => [0x21, l],
  tee: (l: number) => [0x22, l],
  f32Load: [0x2a, 2, 0],
  i32Load16u: [0x2f, 1, 0],
  i32Store8: [0x3a, 0, 0],
  i32Store: [0x36, 2, 0],
  i32Store16: [0x3b, 1, 0],
  i32: (v: number) => [0x41, ...sleb(v)],
  f32: (v: number) => [0x43, ...new Uint8Array(Float32Array.of(v).buffer)],
  i32GeU: [0x4f],
  i32GtU: [0x4b],
  i32Add: [0x6a],
  i32Sub: [0x6b],
  i32Mul: [0x6c],
  i32And: [0x71],
  i32Or: [0x72],
  i32Shl: [0x74],
  i32ShrU: [0x76],
  f32Nearest: [0x90],
  f32Mul: [0x94],
  f32Div: [0x95],
  i32TruncF32U: [0xa9],
  i32ReinterpretF32: [0xbc],
  f32ReinterpretI32: [0xbe],
};

/** `fp8(inPtr, outPtr, scalePtr, groups, size)`: `groups` × `size` bf16 patterns at `inPtr` to E4M3 bytes at `outPtr`, group g divided by the float32 at `scalePtr + 4g`. */
function moduleBytes(): Uint8Array {
  // Locals: 0 in, 1 out, 2 scales, 3 groups, 4 size (parameters); 5 g, 6 i, 7 h, 8 b (i32); 9 s (f32).
  const [IN, OUT, SCALES, GROUPS, SIZE, G, I, H, B, S] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const CAP = 0x43e0; // 448 as bf16 bits
  const element = [
    // h = the weight's bf16 pattern; b = bf16 bits of |x| / s, rounded to nearest even
    ...op.get(IN), ...op.i32Load16u, ...op.set(H),
    ...op.get(H), ...op.i32(0x7fff), ...op.i32And, ...op.i32(16), ...op.i32Shl, ...op.f32ReinterpretI32,
    ...op.get(S), ...op.f32Div, ...op.i32ReinterpretF32, ...op.tee(B),
    ...op.i32(0x7fff), ...op.i32Add, ...op.get(B), ...op.i32(16), ...op.i32ShrU, ...op.i32(1), ...op.i32And, ...op.i32Add,
    ...op.i32(16), ...op.i32ShrU, ...op.set(B),
    // b = min(b, 448): larger quotients (and infinity) saturate
    ...op.i32(CAP), ...op.get(B), ...op.get(B), ...op.i32(CAP), ...op.i32GtU, ...op.select, ...op.set(B),
    ...op.get(OUT),
    // normal E4M3 (b ≥ 2^-6): e = b − (120 << 7), code = (e + 7 + ((e >> 4) & 1)) >> 4
    ...op.get(B), ...op.i32(120 << 7), ...op.i32Sub, ...op.tee(H + 0), // h is free again; reuse it for e
    ...op.i32(7), ...op.i32Add, ...op.get(H), ...op.i32(4), ...op.i32ShrU, ...op.i32(1), ...op.i32And, ...op.i32Add, ...op.i32(4), ...op.i32ShrU,
    // subnormal E4M3: round-half-even(v · 512)
    ...op.get(B), ...op.i32(16), ...op.i32Shl, ...op.f32ReinterpretI32, ...op.f32(512), ...op.f32Mul, ...op.f32Nearest, ...op.i32TruncF32U,
    ...op.get(B), ...op.i32(0x3c80), ...op.i32GeU, ...op.select,
    // the weight's sign, −0 included
    ...op.get(IN), ...op.i32Load16u, ...op.i32(15), ...op.i32ShrU, ...op.i32(7), ...op.i32Shl, ...op.i32Or,
    ...op.i32Store8,
    ...op.get(IN), ...op.i32(2), ...op.i32Add, ...op.set(IN),
    ...op.get(OUT), ...op.i32(1), ...op.i32Add, ...op.set(OUT),
  ];
  const body = groupLoops({ G, I, GROUPS, SIZE, SCALES }, [...op.set(S)], element, 1);
  const locals = [2, 4, 0x7f, 1, 0x7d]; // 4 × i32, 1 × f32
  return wasmModule([...locals, ...body]);
}

/** SIMD opcodes (after the 0xfd prefix, LEB128) the kernels use. */
const simd = (code: number, ...imm: number[]): number[] => [0xfd, ...uleb(code), ...imm];
const v = {
  load: simd(0x00, 4, 0),
  i32x4Const: (lanes: readonly number[]) => simd(0x0c, ...new Uint8Array(Int32Array.from(lanes).buffer)),
  i32x4ExtractLane: (lane: number) => simd(0x1b, lane),
  i32x4Ne: simd(0x38),
  f32x4Ne: simd(0x42),
  f32x4Gt: simd(0x44),
  f32x4Ge: simd(0x46),
  i16x8ShrU: simd(0x8d),
  i16x8Const: (lanes: readonly number[]) => simd(0x0c, ...new Uint8Array(Uint16Array.from(lanes).buffer)),
  i16x8Shl: simd(0x8b),
  i16x8Add: simd(0x8e),
  i16x8Sub: simd(0x91),
  i16x8MinU: simd(0x97),
  i16x8GeU: simd(0x36),
  i32x4ExtendLowU: simd(0xa9),
  i32x4ExtendHighU: simd(0xaa),
  f32x4Add: simd(0xe4),
  store64Lane0: simd(0x5b, 0, 0, 0),
  i32x4ShrS: simd(0xac),
  i32x4Mul: simd(0xb5),
  load16x4u: simd(0x04, 3, 0),
  i16x8Splat: simd(0x10),
  i16x8ExtractLaneU: (lane: number) => simd(0x19, lane),
  i16x8MaxU: simd(0x99),
  store32Lane0: simd(0x5a, 0, 0, 0),
  i32x4Splat: simd(0x11),
  f32x4Splat: simd(0x13),
  and: simd(0x4e),
  or: simd(0x50),
  bitselect: simd(0x52),
  i16x8NarrowU: simd(0x86),
  i8x16NarrowU: simd(0x66),
  f32x4Nearest: simd(0x6a),
  i32x4Shl: simd(0xab),
  i32x4ShrU: simd(0xad),
  i32x4Add: simd(0xae),
  i32x4Sub: simd(0xb1),
  i32x4MinU: simd(0xb7),
  f32x4Div: simd(0xe7),
  i32x4TruncSatF32x4U: simd(0xf9),
};

/**
 * {@link moduleBytes} eight elements at a time (group sizes that are
 * multiples of 8): the divisions in two float32 halves, the E4M3 encoding
 * on eight 16-bit lanes at once (half the vector operations of 32-bit
 * lanes, 0.81 against 1.54 ns per element measured); subnormal codes as `bits(f32(v + 2^14)) −
 * bits(2^14)`, which is `v · 512` rounded half to even because the ulp of
 * 2^14 in float32 is 2^-9; constants as `v128.const`.
 */
function simd8ModuleBytes(): Uint8Array {
  // Locals: 0 in, 1 out, 2 scales, 3 groups, 4 size; 5 g, 6 i (i32); 7 s, 8 h, 9 lo, 10 hi, 11 b, 12 e (v128).
  const [IN, OUT, SCALES, GROUPS, SIZE, G, I, S, H, LO, HI, B, E] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
  const i32c = (x: number): number[] => v.i32x4Const([x, x, x, x]);
  const i16c = (x: number): number[] => v.i16x8Const([x, x, x, x, x, x, x, x]);
  const CAP = 0x43e0;
  // One half of the eight (lanes widened from h): bf16 bits of |x| / s rounded to nearest even, in int32 lanes.
  const half = (extend: number[], into: number): number[] => [
    ...op.get(H), ...i16c(0x7fff), ...v.and, ...extend, ...op.i32(16), ...v.i32x4Shl,
    ...op.get(S), ...v.f32x4Div, ...op.tee(into),
    ...i32c(0x7fff), ...v.i32x4Add, ...op.get(into), ...op.i32(16), ...v.i32x4ShrU, ...i32c(1), ...v.and, ...v.i32x4Add,
    ...op.i32(16), ...v.i32x4ShrU, ...op.set(into),
  ];
  // Subnormal E4M3 codes of one half: bits(f32(v + 16384)) − bits(16384).
  const subnormal = (from: number): number[] => [
    ...op.get(from), ...op.i32(16), ...v.i32x4Shl, ...v.i32x4Const([0x46800000, 0x46800000, 0x46800000, 0x46800000]), ...v.f32x4Add, ...i32c(0x46800000), ...v.i32x4Sub,
  ];
  const eight = [
    ...op.get(OUT),
    ...op.get(IN), ...v.load, ...op.set(H),
    ...half(v.i32x4ExtendLowU, LO), ...half(v.i32x4ExtendHighU, HI),
    ...op.get(LO), ...op.get(HI), ...v.i16x8NarrowU, ...i16c(CAP), ...v.i16x8MinU, ...op.tee(B),
    // normal codes: e = b − (120 << 7), (e + 7 + ((e >> 4) & 1)) >> 4
    ...i16c(120 << 7), ...v.i16x8Sub, ...op.tee(E),
    ...i16c(7), ...v.i16x8Add, ...op.get(E), ...op.i32(4), ...v.i16x8ShrU, ...i16c(1), ...v.and, ...v.i16x8Add, ...op.i32(4), ...v.i16x8ShrU,
    ...subnormal(LO), ...subnormal(HI), ...v.i16x8NarrowU,
    ...op.get(B), ...i16c(0x3c80), ...v.i16x8GeU, ...v.bitselect,
    // the weight's sign, −0 included
    ...op.get(H), ...op.i32(15), ...v.i16x8ShrU, ...op.i32(7), ...v.i16x8Shl, ...v.or,
    ...op.tee(E), ...op.get(E), ...v.i8x16NarrowU,
    ...v.store64Lane0,
    ...op.get(IN), ...op.i32(16), ...op.i32Add, ...op.set(IN),
    ...op.get(OUT), ...op.i32(8), ...op.i32Add, ...op.set(OUT),
  ];
  const body = groupLoops({ G, I, GROUPS, SIZE, SCALES }, [...v.f32x4Splat, ...op.set(S)], eight, 8);
  const locals = [2, 2, 0x7f, 6, 0x7b]; // 2 × i32, 6 × v128
  return wasmModule([...locals, ...body]);
}

/**
 * The function body around `step`: for each group g, `before` (given the
 * group's float32 scale where `scale` is set, left on the stack for it to
 * keep), then `step` (which advances the pointers) once per `width`
 * elements of the group, then `after`.
 */
function groupLoops(l: GroupLocals, before: number[], step: number[], width: number, after: number[] = []): number[] {
  const scale = l.SCALES === undefined ? [] : [...op.get(l.SCALES), ...op.get(l.G), ...op.i32(4), ...op.i32Mul, ...op.i32Add, ...op.f32Load];
  return [
    ...op.i32(0), ...op.set(l.G),
    ...op.block, ...op.loop,
    ...op.get(l.G), ...op.get(l.GROUPS), ...op.i32GeU, ...op.brIf(1),
    ...scale, ...before,
    ...op.i32(0), ...op.set(l.I),
    ...op.block, ...op.loop,
    ...op.get(l.I), ...op.get(l.SIZE), ...op.i32GeU, ...op.brIf(1),
    ...step,
    ...op.get(l.I), ...op.i32(width), ...op.i32Add, ...op.set(l.I),
    ...op.br(0),
    ...op.end, ...op.end,
    ...after,
    ...op.get(l.G), ...op.i32(1), ...op.i32Add, ...op.set(l.G),
    ...op.br(0),
    ...op.end, ...op.end,
    ...op.end,
  ];
}

/** The locals {@link groupLoops} reads: the group and element counters, the counts, the scales' address (where groups have scales). */
interface GroupLocals {
  readonly G: number;
  readonly I: number;
  readonly GROUPS: number;
  readonly SIZE: number;
  readonly SCALES?: number;
}

/**
 * `absmax(inPtr, outPtr, _, groups, size)`: each group's largest magnitude
 * bits (`h & 0x7fff`, which order like the values) of `size` bf16 patterns
 * at `inPtr`, as a uint16 at `outPtr + 2g`; eight at a time (`size` a
 * multiple of 8).
 */
function absmaxModuleBytes(): Uint8Array {
  // Locals: 0 in, 1 out, 2 unused, 3 groups, 4 size; 5 g, 6 i, 7 m, 8 t (i32); 9 acc (v128).
  const [IN, OUT, GROUPS, SIZE, G, I, M, T, ACC] = [0, 1, 3, 4, 5, 6, 7, 8, 9];
  const eight = [
    ...op.get(ACC), ...op.get(IN), ...v.load, ...op.i32(0x7fff), ...v.i16x8Splat, ...v.and, ...v.i16x8MaxU, ...op.set(ACC),
    ...op.get(IN), ...op.i32(16), ...op.i32Add, ...op.set(IN),
  ];
  const lanes = [...op.get(ACC), ...v.i16x8ExtractLaneU(0), ...op.set(M)];
  for (let lane = 1; lane < 8; lane++) {
    lanes.push(...op.get(ACC), ...v.i16x8ExtractLaneU(lane), ...op.tee(T), ...op.get(M), ...op.get(T), ...op.get(M), ...op.i32GtU, ...op.select, ...op.set(M));
  }
  const after = [...lanes, ...op.get(OUT), ...op.get(M), ...op.i32Store16, ...op.get(OUT), ...op.i32(2), ...op.i32Add, ...op.set(OUT)];
  const before = [...op.i32(0), ...v.i16x8Splat, ...op.set(ACC)];
  const locals = [2, 4, 0x7f, 1, 0x7b]; // 4 × i32, 1 × v128
  return wasmModule([...locals, ...groupLoops({ G, I, GROUPS, SIZE }, before, eight, 8, after)]);
}

/**
 * `int4(inPtr, outPtr, scalePtr, groups, size)`: symmetric 4-bit codes of
 * bf16 patterns packed eight to an int32 word as compressed-tensors packs
 * them (`q + 8`, element j at bits 4j): `q = round(clip(bf16(|x| / s), 0,
 * 7 or 8))` rounded half to even, negated for negative weights (−8 allowed,
 * +8 not). Eight elements per step (`size` a multiple of 8).
 */
function int4ModuleBytes(): Uint8Array {
  // Locals: 0 in, 1 out, 2 scales, 3 groups, 4 size; 5 g, 6 i (i32); 7 s, 8 h, 9 b, 10 w (v128).
  const [IN, OUT, SCALES, GROUPS, SIZE, G, I, S, H, B, W] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const splat = (x: number): number[] => [...op.i32(x), ...v.i32x4Splat];
  // One quad of elements (at in + 8·quad) to its four codes, each shifted to its nibble of the word.
  const quad = (q: 0 | 1): number[] => [
    ...op.get(IN), ...v.load16x4u.slice(0, -1), q * 8, ...op.tee(H),
    ...splat(0x7fff), ...v.and, ...op.i32(16), ...v.i32x4Shl,
    ...op.get(S), ...v.f32x4Div, ...op.tee(B),
    ...splat(0x7fff), ...v.i32x4Add, ...op.get(B), ...op.i32(16), ...v.i32x4ShrU, ...splat(1), ...v.and, ...v.i32x4Add,
    ...op.i32(16), ...v.i32x4ShrU, ...splat(0x437f), ...v.i32x4MinU,
    // m = round-half-even of the quotient's value
    ...op.i32(16), ...v.i32x4Shl, ...v.f32x4Nearest, ...v.i32x4TruncSatF32x4U, ...op.set(B),
    // 8 − min(m, 8) below zero, 8 + min(m, 7) above
    ...splat(8), ...op.get(B), ...splat(8), ...v.i32x4MinU, ...v.i32x4Sub,
    ...op.get(B), ...splat(7), ...v.i32x4MinU, ...splat(8), ...v.i32x4Add,
    ...op.get(H), ...op.i32(16), ...v.i32x4Shl, ...op.i32(31), ...v.i32x4ShrS,
    ...v.bitselect,
    ...v.i32x4Const(q === 0 ? [1, 16, 256, 4096] : [1 << 16, 1 << 20, 1 << 24, 1 << 28]), ...v.i32x4Mul,
  ];
  const lane = (n: number): number[] => [...op.get(W), ...v.i32x4ExtractLane(n)];
  const eight = [
    ...quad(0), ...quad(1), ...v.or, ...op.set(W),
    ...op.get(OUT), ...lane(0), ...lane(1), ...op.i32Or, ...lane(2), ...op.i32Or, ...lane(3), ...op.i32Or, ...op.i32Store,
    ...op.get(IN), ...op.i32(16), ...op.i32Add, ...op.set(IN),
    ...op.get(OUT), ...op.i32(4), ...op.i32Add, ...op.set(OUT),
  ];
  const locals = [2, 2, 0x7f, 4, 0x7b]; // 2 × i32, 4 × v128
  return wasmModule([...locals, ...groupLoops({ G, I, GROUPS, SIZE, SCALES }, [...v.f32x4Splat, ...op.set(S)], eight, 8)]);
}

/**
 * `nvfp4(inPtr, outPtr, divPtr, groups, size)`: NVFP4's E2M1 codes of bf16
 * patterns, two to a byte (low nibble first), group g divided by the
 * float32 at `divPtr + 4g` (its `f32(scale / global_scale)`): the magnitude
 * code counts the thresholds 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5 that
 * |x / d| passes (strictly, or from 0.75, 1.75, 3.5 up; NaN 7, which clips
 * to 6), plus 8 below zero (not −0). Eight elements per step (`size` a
 * multiple of 8). IEEE division of two float32 values is what JavaScript's
 * double division rounded to float32 gives, so the codes are the table
 * walk's.
 */
function nvfp4ModuleBytes(): Uint8Array {
  // Locals: 0 in, 1 out, 2 divisors, 3 groups, 4 size; 5 g, 6 i (i32); 7 d, 8 q, 9 a, 10 e (v128).
  const [IN, OUT, DIVS, GROUPS, SIZE, G, I, D, Q, A, E] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const splat = (x: number): number[] => [...op.i32(x), ...v.i32x4Splat];
  const past = (t: number, inclusive: boolean): number[] => [...op.get(A), ...op.f32(t), ...v.f32x4Splat, ...(inclusive ? v.f32x4Ge : v.f32x4Gt), ...v.i32x4Add];
  // Four elements (at in + 8·quad) to their codes, one per int32 lane.
  const quad = (q: 0 | 1): number[] => [
    ...op.get(IN), ...v.load16x4u.slice(0, -1), q * 8, ...op.i32(16), ...v.i32x4Shl,
    ...op.get(D), ...v.f32x4Div, ...op.tee(Q),
    ...splat(0x7fffffff), ...v.and, ...op.set(A),
    // 0 − (sum of the comparisons' all-ones masks) = how many thresholds |q| passes
    ...splat(0), ...splat(0),
    ...past(0.25, false), ...past(0.75, true), ...past(1.25, false), ...past(1.75, true), ...past(2.5, false), ...past(3.5, true), ...past(5, false),
    ...v.i32x4Sub,
    ...op.get(A), ...op.get(A), ...v.f32x4Ne, ...splat(7), ...v.and, ...v.or,
    // the quotient's sign bit, where its magnitude is not zero
    ...op.get(Q), ...op.i32(28), ...v.i32x4ShrU, ...splat(8), ...v.and, ...op.get(A), ...splat(0), ...v.i32x4Ne, ...v.and, ...v.or,
  ];
  const eight = [
    ...op.get(OUT),
    // bytes c0 … c7; as int16 lanes c(2k) + 256·c(2k+1), folded to c(2k) | c(2k+1) << 4 in the low byte
    ...quad(0), ...quad(1), ...v.i16x8NarrowU, ...op.tee(E), ...op.get(E), ...v.i8x16NarrowU, ...op.tee(E),
    ...op.get(E), ...op.i32(4), ...v.i16x8ShrU, ...v.or, ...op.i32(0xff), ...v.i16x8Splat, ...v.and, ...op.tee(E), ...op.get(E), ...v.i8x16NarrowU,
    ...v.store32Lane0,
    ...op.get(IN), ...op.i32(16), ...op.i32Add, ...op.set(IN),
    ...op.get(OUT), ...op.i32(4), ...op.i32Add, ...op.set(OUT),
  ];
  const locals = [2, 2, 0x7f, 4, 0x7b]; // 2 × i32, 4 × v128
  return wasmModule([...locals, ...groupLoops({ G, I, GROUPS, SIZE, SCALES: DIVS }, [...v.f32x4Splat, ...op.set(D)], eight, 8)]);
}

/** A module of one function `run(i32 × 5)` with body `code` and its memory, both exported. */
function wasmModule(code: number[]): Uint8Array {
  const name = (s: string): number[] => [...uleb(s.length), ...Buffer.from(s, 'utf8')];
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, 5, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0]),
    ...section(3, [1, 0]),
    ...section(5, [1, 0x00, 1]),
    ...section(7, [2, ...name('run'), 0x00, 0, ...name('memory'), 0x02, 0]),
    ...section(10, [1, ...uleb(code.length), ...code]),
  ]);
}

type Kernel = { readonly run: (a: number, b: number, c: number, groups: number, size: number) => void; readonly memory: WasmMemory };

/** The kernels of this thread (each worker thread compiles its own); null where WebAssembly (or its SIMD) cannot run them. */
const kernels: { scalar?: Kernel | null; simd8?: Kernel | null; absmax?: Kernel | null; int4?: Kernel | null; nvfp4?: Kernel | null } = {};

function compile(bytes: () => Uint8Array): Kernel | null {
  const wasm = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;
  try {
    // QUANTC_WASM=0 keeps the JavaScript loops (for comparisons).
    if (!wasm || process.env.QUANTC_WASM === '0') return null;
    const exports = new wasm.Instance(new wasm.Module(bytes())).exports as { run: Kernel['run']; memory: WasmMemory };
    return { run: exports.run, memory: exports.memory };
  } catch {
    return null;
  }
}

/** The FP8 kernel for groups of `size`: eight at a time where sizes allow and SIMD runs, else one at a time. */
function kernelFor(size: number, mode?: 'scalar' | 'simd8'): Kernel | null {
  if (mode !== 'scalar' && size % 8 === 0) {
    if (kernels.simd8 === undefined) kernels.simd8 = compile(simd8ModuleBytes);
    if (kernels.simd8 || mode === 'simd8') return kernels.simd8;
  }
  if (kernels.scalar === undefined) kernels.scalar = compile(moduleBytes);
  return kernels.scalar;
}

/** Kernel `name` for groups of `size` (compiled once per thread), or null where `size` is not a multiple of 8 or SIMD does not run. */
function eightWide(name: 'absmax' | 'int4' | 'nvfp4', bytes: () => Uint8Array, size: number): Kernel | null {
  if (size % 8 !== 0) return null;
  if (kernels[name] === undefined) kernels[name] = compile(bytes);
  return kernels[name];
}

/**
 * Runs kernel `k` over `groups` × `size` bf16 patterns, whole groups per
 * call: each chunk's patterns copied into the module's memory, then
 * `run(inPtr, outPtr, extraPtr, n, size)` with `extra` (one float32 per
 * group, or nothing) copied after them, and `take` reading `outBytes(n)`
 * bytes of results for groups `[g0, g0 + n)`.
 */
function runChunked(k: Kernel, bits: Uint16Array, groups: number, size: number, extra: Float32Array | null, outBytes: (n: number) => number, take: (out: Uint8Array, g0: number, n: number) => void): void {
  const per = Math.max(1, Math.floor(CHUNK_ELEMENTS / Math.max(1, size)));
  const most = Math.min(groups, per);
  const need = 16 + most * size * 2 + outBytes(most) + most * 4;
  if (k.memory.buffer.byteLength < need) k.memory.grow(Math.ceil((need - k.memory.buffer.byteLength) / 65536));
  for (let g0 = 0; g0 < groups; g0 += per) {
    const n = Math.min(per, groups - g0);
    const mem = k.memory.buffer;
    const outPtr = (n * size * 2 + 15) & ~15;
    const extraPtr = (outPtr + outBytes(n) + 15) & ~15;
    new Uint16Array(mem, 0, n * size).set(bits.subarray(g0 * size, (g0 + n) * size));
    if (extra) new Float32Array(mem, extraPtr, n).set(extra.subarray(g0, g0 + n));
    k.run(0, outPtr, extraPtr, n, size);
    take(new Uint8Array(mem, outPtr, outBytes(n)), g0, n);
  }
}

/**
 * E4M3 codes of `groups` × `size` bf16 patterns, group g divided by
 * `scale[g]`; null where WebAssembly is unavailable. `mode` forces one
 * kernel (tests).
 */
export function fp8CodesWasm(bits: Uint16Array, scale: Float32Array, groups: number, size: number, mode?: 'scalar' | 'simd8'): Uint8Array | null {
  const k = kernelFor(size, mode);
  if (!k) return null;
  const out = new Uint8Array(groups * size);
  runChunked(k, bits, groups, size, scale, (n) => n * size, (codes, g0) => out.set(codes, g0 * size));
  return out;
}

/**
 * Each group's largest magnitude as bf16 bits (`h & 0x7fff`, NaN and
 * infinity largest) of `groups` × `size` patterns; null where the SIMD
 * kernel does not run or `size` is not a multiple of 8.
 */
export function absmaxBitsWasm(bits: Uint16Array, groups: number, size: number): Uint16Array | null {
  const k = eightWide('absmax', absmaxModuleBytes, size);
  if (!k) return null;
  const out = new Uint16Array(groups);
  runChunked(k, bits, groups, size, null, (n) => n * 2, (maxima, g0, n) => out.set(new Uint16Array(maxima.buffer, maxima.byteOffset, n), g0));
  return out;
}

/**
 * Symmetric 4-bit codes of `groups` × `size` bf16 patterns packed eight to
 * an int32 word (see {@link int4ModuleBytes}), group g divided by
 * `scale[g]`; null where the SIMD kernel does not run or `size` is not a
 * multiple of 8.
 */
export function int4WordsWasm(bits: Uint16Array, scale: Float32Array, groups: number, size: number): Int32Array | null {
  const k = eightWide('int4', int4ModuleBytes, size);
  if (!k) return null;
  const out = new Int32Array((groups * size) / 8);
  runChunked(k, bits, groups, size, scale, (n) => (n * size) / 2, (words, g0, n) => out.set(new Int32Array(words.buffer, words.byteOffset, (n * size) / 8), (g0 * size) / 8));
  return out;
}

/**
 * NVFP4 bytes of `groups` × `size` bf16 patterns, two codes each (see
 * {@link nvfp4ModuleBytes}), group g divided by `divisor[g]`; null where
 * the SIMD kernel does not run or `size` is not a multiple of 8.
 */
export function nvfp4BytesWasm(bits: Uint16Array, divisor: Float32Array, groups: number, size: number): Uint8Array | null {
  const k = eightWide('nvfp4', nvfp4ModuleBytes, size);
  if (!k) return null;
  const out = new Uint8Array((groups * size) / 2);
  runChunked(k, bits, groups, size, divisor, (n) => (n * size) / 2, (bytes, g0) => out.set(bytes, (g0 * size) / 2));
  return out;
}
