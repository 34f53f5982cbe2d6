/**
 * The protobuf wire format, as far as the tinker_public messages need it: varints, length-delimited
 * fields, fixed64 doubles, and little-endian bulk arrays copied with typed arrays (no per-element
 * objects, no BigInt). Hand-written because the bulk tensors of a forward_backward are the hot path.
 *
 * @module
 */

/**
 * A protobuf body that cannot be decoded; the message names the field and the problem.
 *
 * @example
 * ```ts
 * try {
 *   new ProtoReader(Uint8Array.from([0x08]), "ForwardBackwardOutput").next();
 * } catch (err) {
 *   if (err instanceof ProtoWireError) console.log(err.message); // "ForwardBackwardOutput: truncated varint ..."
 * }
 * ```
 */
export class ProtoWireError extends Error {
  override name = "ProtoWireError";
}

/**
 * True on little-endian hosts (all platforms Node ships for, in practice).
 *
 * @example
 * ```ts
 * const floats = Uint8Array.from([0, 0, 128, 63]); // 1.0 as float32 little-endian
 * if (!LITTLE_ENDIAN) swapBytes(floats, 4);
 * ```
 */
export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Wire types.
 *
 * @example
 * ```ts
 * const w = new ProtoWriter(2);
 * w.tag(6, WT_VARINT); // forward_only
 * w.varint(1);
 * ```
 */
export const WT_VARINT = 0;
export const WT_FIXED64 = 1;
export const WT_LEN = 2;
export const WT_FIXED32 = 5;

/**
 * Bytes a varint of the non-negative safe integer `v` takes.
 *
 * @example
 * ```ts
 * varintSize(127); // 1
 * varintSize(128); // 2
 * ```
 */
export function varintSize(v: number): number {
  let n = 1;
  while (v >= 128) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

/**
 * Bytes a tag of field `field` takes.
 *
 * @example
 * ```ts
 * tagSize(15); // 1
 * tagSize(16); // 2
 * ```
 */
export function tagSize(field: number): number {
  return varintSize(field << 3);
}

/**
 * Bytes of a length-delimited field of `len` payload bytes (tag + length + payload).
 *
 * @example
 * ```ts
 * lenFieldSize(1, 8192); // 1 + 2 + 8192
 * ```
 */
export function lenFieldSize(field: number, len: number): number {
  return tagSize(field) + varintSize(len) + len;
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: true });

/**
 * UTF-8 bytes of `s`.
 *
 * @example
 * ```ts
 * utf8("loss:sum").length; // 8
 * ```
 */
export function utf8(s: string): Uint8Array {
  return textEncoder.encode(s);
}

/**
 * A writer into a buffer of known size (sizes are computed first, so nothing is copied twice).
 *
 * @example
 * ```ts
 * const model = utf8("sess-1:train:0");
 * const w = new ProtoWriter(lenFieldSize(1, model.length));
 * w.bytesField(1, model); // ForwardBackwardRequest.model_id
 * ```
 */
export class ProtoWriter {
  readonly buf: Uint8Array;
  /** A DataView over {@link buf}, for bulk little-endian writes. */
  readonly view: DataView;
  pos = 0;

  /**
   * A buffer of exactly `size` bytes. It is not zero-filled (fresh zeroed pages cost more than the encoding):
   * the writer must write every byte, which the encoders check (`pos === size`) before returning it.
   */
  constructor(size: number) {
    const b = Buffer.allocUnsafeSlow(size);
    this.buf = new Uint8Array(b.buffer, b.byteOffset, size);
    this.view = new DataView(b.buffer, b.byteOffset, size);
  }

  /** Writes a non-negative safe integer as a varint. */
  varint(v: number): void {
    const buf = this.buf;
    while (v >= 128) {
      buf[this.pos++] = (v & 127) | 128;
      v = Math.floor(v / 128);
    }
    buf[this.pos++] = v;
  }

  /** Writes a negative int32/int64 as the 10-byte two's-complement varint protobuf uses. */
  negativeVarint(v: number): void {
    // two's complement over 64 bits: hi/lo halves
    const hi = Math.floor(v / 4294967296);
    let lo = (v - hi * 4294967296) >>> 0;
    let h = hi >>> 0;
    for (let i = 0; i < 9; i++) {
      this.buf[this.pos++] = (lo & 127) | 128;
      lo = (lo >>> 7) | ((h & 127) << 25);
      h >>>= 7;
    }
    this.buf[this.pos++] = lo & 1;
  }

  tag(field: number, wireType: number): void {
    this.varint((field << 3) | wireType);
  }

  /** A length-delimited field's tag and length; the caller writes `len` payload bytes next. */
  lenHeader(field: number, len: number): void {
    this.tag(field, WT_LEN);
    this.varint(len);
  }

  bytesField(field: number, bytes: Uint8Array): void {
    this.lenHeader(field, bytes.length);
    this.raw(bytes);
  }

  raw(bytes: Uint8Array): void {
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  double(field: number, v: number): void {
    this.tag(field, WT_FIXED64);
    this.view.setFloat64(this.pos, v, true);
    this.pos += 8;
  }
}

/**
 * Bytes of a varint-encoded int32/int64 field value (negative values take 10 bytes).
 *
 * @example
 * ```ts
 * signedVarintSize(-1); // 10
 * ```
 */
export function signedVarintSize(v: number): number {
  return v < 0 ? 10 : varintSize(v);
}

/** One field read by {@link ProtoReader.next}. */
export interface ProtoField {
  field: number;
  wireType: number;
  /** VARINT: the value unsigned (as a double; exact up to 2^53); FIXED64/FIXED32: the float. */
  value: number;
  /** VARINT: the value as a two's-complement signed int64 (exact within ±2^53). */
  signed: number;
  /** LEN: start and end of the payload in the reader's buffer. */
  start: number;
  end: number;
}

/**
 * Reads the fields of one message, in order. `where` prefixes error messages (e.g. `ForwardBackwardOutput`).
 *
 * @example
 * ```ts
 * const r = new ProtoReader(new Uint8Array(await response.arrayBuffer()), "ForwardBackwardOutput");
 * for (let f = r.next(); f !== undefined; f = r.next()) {
 *   if (f.field === 1) console.log(r.string(f, "loss_fn_output_type"));
 * }
 * ```
 */
export class ProtoReader {
  readonly buf: Uint8Array;
  pos: number;
  readonly end: number;
  readonly where: string;
  readonly #view: DataView;
  readonly #field: ProtoField = { field: 0, wireType: 0, value: 0, signed: 0, start: 0, end: 0 };

  constructor(buf: Uint8Array, where: string, start = 0, end = buf.length) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
    this.where = where;
    this.#view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  /** A reader over a nested message (the payload of a LEN field). */
  sub(f: ProtoField, where: string): ProtoReader {
    return new ProtoReader(this.buf, where, f.start, f.end);
  }

  fail(message: string): never {
    throw new ProtoWireError(`${this.where}: ${message}`);
  }

  #hi = 0;
  #lo = 0;

  /** Reads a varint; its 64 bits stay in #hi/#lo; returns it unsigned (exact up to 2^53). */
  #varint(): number {
    const buf = this.buf;
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.fail("truncated varint (the message ends early)");
      const b = buf[this.pos++]!;
      if (i < 4) lo |= (b & 127) << (7 * i);
      else if (i === 4) {
        lo |= (b & 15) << 28;
        hi = (b & 127) >>> 4;
      } else if (i < 9) hi |= (b & 127) << (7 * i - 32);
      else {
        if (b > 1) this.fail("malformed varint");
        hi |= b << 31;
      }
      if (b < 128) {
        this.#hi = hi | 0;
        this.#lo = lo >>> 0;
        return (hi >>> 0) * 4294967296 + (lo >>> 0);
      }
    }
    return this.fail("varint longer than 10 bytes");
  }

  /** The next field (the same object is reused), or undefined at the end of the message. */
  next(): ProtoField | undefined {
    if (this.pos >= this.end) return undefined;
    const key = this.#varint();
    const f = this.#field;
    f.field = Math.floor(key / 8);
    f.wireType = key % 8;
    if (f.field === 0) this.fail("field number 0 is not allowed");
    switch (f.wireType) {
      case WT_VARINT:
        f.value = this.#varint();
        f.signed = this.#hi * 4294967296 + this.#lo;
        break;
      case WT_FIXED64:
        if (this.pos + 8 > this.end) this.fail(`field ${f.field}: truncated fixed64`);
        f.value = this.#view.getFloat64(this.pos, true);
        this.pos += 8;
        break;
      case WT_LEN: {
        const len = this.#varint();
        if (this.pos + len > this.end) this.fail(`field ${f.field}: length ${len} runs past the end of the message`);
        f.start = this.pos;
        f.end = this.pos + len;
        this.pos += len;
        break;
      }
      case WT_FIXED32:
        if (this.pos + 4 > this.end) this.fail(`field ${f.field}: truncated fixed32`);
        f.value = this.#view.getFloat32(this.pos, true);
        this.pos += 4;
        break;
      default:
        this.fail(`field ${f.field}: unsupported wire type ${f.wireType}`);
    }
    return f;
  }

  /** Asserts the wire type of a known field. */
  expect(f: ProtoField, wireType: number, name: string): void {
    if (f.wireType !== wireType) this.fail(`${name} (field ${f.field}) has wire type ${f.wireType}, expected ${wireType}`);
  }

  string(f: ProtoField, name: string): string {
    this.expect(f, WT_LEN, name);
    try {
      return textDecoder.decode(this.buf.subarray(f.start, f.end));
    } catch {
      return this.fail(`${name} is not valid UTF-8`);
    }
  }

  /** A copy of a LEN field's payload in its own (aligned) buffer. */
  bytes(f: ProtoField, name: string): Uint8Array {
    this.expect(f, WT_LEN, name);
    return this.buf.slice(f.start, f.end);
  }

  /** A varint field as a signed int32/int64 (two's complement), exact within ±2^53. */
  signed(f: ProtoField, name: string): number {
    this.expect(f, WT_VARINT, name);
    return f.signed;
  }

  /** A packed (or unpacked) repeated int64 element(s) appended to `out`. */
  repeatedInt64(f: ProtoField, name: string, out: number[]): void {
    if (f.wireType === WT_VARINT) {
      out.push(this.signed(f, name));
      return;
    }
    this.expect(f, WT_LEN, name);
    const inner = new ProtoReader(this.buf, `${this.where}.${name}`, f.start, f.end);
    while (inner.pos < inner.end) {
      inner.#varint();
      out.push(inner.#hi * 4294967296 + inner.#lo);
    }
  }
}

/**
 * Reverses the byte order of each `size`-byte element in place (only used on big-endian hosts).
 *
 * @example
 * ```ts
 * const b = Uint8Array.from([1, 2, 3, 4]);
 * swapBytes(b, 4); // [4, 3, 2, 1]
 * ```
 */
export function swapBytes(bytes: Uint8Array, size: number): void {
  for (let i = 0; i + size <= bytes.length; i += size) {
    for (let a = i, b = i + size - 1; a < b; a++, b--) {
      const t = bytes[a]!;
      bytes[a] = bytes[b]!;
      bytes[b] = t;
    }
  }
}
