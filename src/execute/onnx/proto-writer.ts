/**
 * A minimal protobuf encoder: just the wire types ONNX ModelProto needs
 * (varint, length-delimited, fixed32). Messages are built bottom-up, so a
 * nested message's length is known when its parent writes it; but nothing is
 * concatenated until the outermost message is finished: a writer keeps its
 * small fields in one scratch buffer and only references large payloads
 * (weights) and nested writers. {@link ProtoWriter.finish} then allocates the
 * output once and copies every payload into it with one `set`, or reads it
 * from its file straight into place, so a weight crosses memory once however
 * deeply it is nested.
 */
import { closeSync, openSync, readSync } from 'node:fs';

/** A payload still in a file (a checkpoint tensor): read when the message is finished. */
export interface FileBytes {
  /** Path of the file. */
  readonly file: string;
  /** Byte offset of the payload in the file. */
  readonly offset: number;
  readonly byteLength: number;
}

/** Payloads up to this size are copied into the scratch buffer; larger ones are referenced. */
const INLINE_BYTES = 256;

const utf8 = new TextEncoder();
const floatBits = new DataView(new ArrayBuffer(4));

/**
 * Memory a finished message may be written into instead of a fresh
 * allocation, reused message after message: writing a large model into
 * pages already touched runs at the speed of the copy, where fresh pages
 * cost a fault each (page-cache reads measured 8.7 GB/s into buffers in use,
 * 2.0 GB/s into fresh ones). Each message written into it overwrites the
 * last, so it is for messages used once and dropped, such as model bytes
 * handed to onnxruntime, which copies them when it creates the session.
 */
export class ByteArena {
  private buffer = new Uint8Array(0);

  /** `size` bytes of the arena's memory (grown when too small); what the last call returned is overwritten. */
  take(size: number): Uint8Array {
    if (this.buffer.length < size) {
      // Every byte is overwritten by the writer, so the allocation need not be zeroed.
      const buf = Buffer.allocUnsafeSlow(size);
      this.buffer = new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
    }
    return this.buffer.subarray(0, size);
  }
}

/** A protobuf message being written: fields in order, nested messages by reference. */
export class ProtoWriter {
  /** Finished runs of the scratch buffer, referenced payloads and nested writers, in order. */
  private parts: (Uint8Array | FileBytes | ProtoWriter)[] = [];
  private scratch = new Uint8Array(64);
  /** Start of the scratch bytes not yet in `parts`. */
  private from = 0;
  private at = 0;
  /** Encoded size in bytes of everything written so far. */
  size = 0;

  /**
   * The encoded message. Referenced payloads, files and nested writers are
   * read now: they must not change between being written and this call.
   * File payloads are read synchronously, each straight into its place.
   * With `arena`, the message is written into the arena's memory.
   */
  finish(arena?: ByteArena): Uint8Array {
    // Every byte is overwritten below, so the allocation need not be zeroed.
    const out = arena ? arena.take(this.size) : new ByteArena().take(this.size);
    const files = new Map<string, number>();
    try {
      const end = this.writeTo(out, 0, files);
      if (end !== this.size) throw new Error(`protobuf size mismatch: wrote ${end} of ${this.size} bytes`);
    } finally {
      for (const fd of files.values()) closeSync(fd);
    }
    return out;
  }

  /** Writes the message at `at`; `files` caches descriptors of the files read. */
  private writeTo(out: Uint8Array, at: number, files: Map<string, number>): number {
    this.flush();
    for (const p of this.parts) {
      if (p instanceof ProtoWriter) at = p.writeTo(out, at, files);
      else if (p instanceof Uint8Array) {
        out.set(p, at);
        at += p.length;
      } else {
        readInto(out.subarray(at, at + p.byteLength), p, files);
        at += p.byteLength;
      }
    }
    return at;
  }

  /** Moves the pending scratch bytes into `parts`. */
  private flush(): void {
    if (this.at > this.from) this.parts.push(this.scratch.subarray(this.from, this.at));
    this.from = this.at;
  }

  /** Room for `n` more scratch bytes (a new buffer leaves flushed runs where they are). */
  private reserve(n: number): void {
    if (this.at + n <= this.scratch.length) return;
    const pending = this.scratch.subarray(this.from, this.at);
    this.scratch = new Uint8Array(Math.max(2 * this.scratch.length, pending.length + n));
    this.scratch.set(pending);
    this.at = pending.length;
    this.from = 0;
  }

  private byte(b: number): void {
    this.scratch[this.at++] = b;
  }

  private varint(value: number | bigint): void {
    this.reserve(10);
    const start = this.at;
    if (typeof value === 'number' && value >= 0 && Number.isSafeInteger(value)) {
      let v = value;
      while (v >= 0x80) {
        this.byte((v % 0x80) | 0x80);
        v = Math.floor(v / 0x80);
      }
      this.byte(v);
    } else {
      // Negative int64 values are encoded as their 64-bit two's complement.
      let v = BigInt.asUintN(64, BigInt(value));
      do {
        let b = Number(v & 0x7fn);
        v >>= 7n;
        if (v !== 0n) b |= 0x80;
        this.byte(b);
      } while (v !== 0n);
    }
    this.size += this.at - start;
  }

  private tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  /** A varint field (int32, int64, enum). */
  int(field: number, value: number | bigint): this {
    this.tag(field, 0);
    this.varint(value);
    return this;
  }

  /** A fixed32 float field. */
  float(field: number, value: number): this {
    this.tag(field, 5);
    floatBits.setFloat32(0, value, true);
    this.reserve(4);
    for (let i = 0; i < 4; i++) this.byte(floatBits.getUint8(i));
    this.size += 4;
    return this;
  }

  /**
   * A length-delimited field of raw bytes, in memory or in a file. Large
   * payloads are referenced, not copied, and files not read until
   * {@link finish}.
   */
  bytes(field: number, value: Uint8Array | FileBytes): this {
    this.tag(field, 2);
    this.varint(value.byteLength);
    if (value instanceof Uint8Array && value.length <= INLINE_BYTES) {
      this.reserve(value.length);
      this.scratch.set(value, this.at);
      this.at += value.length;
    } else {
      this.flush();
      this.parts.push(value);
    }
    this.size += value.byteLength;
    return this;
  }

  /** A nested message field; `message` must be complete (it is encoded by reference). */
  message(field: number, message: ProtoWriter): this {
    this.tag(field, 2);
    this.varint(message.size);
    this.flush();
    this.parts.push(message);
    this.size += message.size;
    return this;
  }

  /** A UTF-8 string field. */
  string(field: number, value: string): this {
    return this.bytes(field, utf8.encode(value));
  }

  /** A packed repeated varint field. */
  packedInts(field: number, values: readonly (number | bigint)[]): this {
    const inner = new ProtoWriter();
    for (const v of values) inner.varint(v);
    return this.message(field, inner);
  }

  /** A packed repeated float field. */
  packedFloats(field: number, values: readonly number[]): this {
    const b = new Uint8Array(values.length * 4);
    const dv = new DataView(b.buffer);
    values.forEach((v, i) => dv.setFloat32(i * 4, v, true));
    return this.bytes(field, b);
  }
}

/** Fills `dest` with the bytes of `src` (opening its file once per message). */
function readInto(dest: Uint8Array, src: FileBytes, files: Map<string, number>): void {
  let fd = files.get(src.file);
  if (fd === undefined) {
    fd = openSync(src.file, 'r');
    files.set(src.file, fd);
  }
  for (let done = 0; done < dest.length; ) {
    const n = readSync(fd, dest, done, dest.length - done, src.offset + done);
    if (n === 0) throw new Error(`${src.file}: unexpected end of file at byte ${src.offset + done}`);
    done += n;
  }
}
