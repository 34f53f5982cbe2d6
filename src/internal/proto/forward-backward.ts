/**
 * The protobuf codec of forward / forward_backward (PROTOCOL §10.1, Appendix B): encodes a
 * `tinker_public.ForwardBackwardRequest` from the SDK's `Datum[]`, and decodes a
 * `tinker_public.ForwardBackwardOutput` into the typed result (the wire JSON shape users already get).
 *
 * Bulk arrays (tokens, tensors, results) go through typed arrays in one loop each; the envelope is small.
 * Sizes are computed first, so the request is written into one buffer of the exact size.
 *
 * @module
 */
import type { components } from "../../../generated/schema.js";
import { InvalidArgumentError } from "../../core/errors.js";
import {
  LITTLE_ENDIAN,
  ProtoReader,
  ProtoWriter,
  ProtoWireError,
  WT_FIXED64,
  WT_LEN,
  WT_VARINT,
  lenFieldSize,
  signedVarintSize,
  swapBytes,
  tagSize,
  utf8,
  varintSize,
} from "./wire.js";

type Schemas = components["schemas"];
type Datum = Schemas["Datum"];
type TensorData = Schemas["TensorData"];
/** The decoded result: the wire output, with `metrics` always present (`{}` when the message has none). */
type ForwardBackwardOutput = Omit<Schemas["ForwardBackwardOutput"], "metrics"> & { metrics: Record<string, number> };

/**
 * `tinker_public.DType` values.
 *
 * @example
 * ```ts
 * DTYPE.BFLOAT16; // 4: decoded to float32
 * ```
 */
export const DTYPE = { UNSPECIFIED: 0, FLOAT32: 1, INT64: 2, INT32: 3, BFLOAT16: 4 } as const;

/** What one forward / forward_backward request carries. */
export interface ForwardBackwardRequestInput {
  /** The model (training run) id. */
  modelId: string;
  /** The request's seq_id (≥ 1). */
  seqId: number;
  /** The batch. */
  data: readonly Datum[];
  /** The loss function, e.g. `"cross_entropy"`. */
  lossFn: string;
  /** Extra loss parameters (`loss_fn_config`). */
  lossFnConfig?: Record<string, number> | null | undefined;
  /** `forward`: compute the loss and outputs only, accumulate no gradient. */
  forwardOnly?: boolean | undefined;
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

function bad(where: string, what: string): never {
  throw new InvalidArgumentError(`${where} ${what}`);
}

function isArrayLike(v: unknown): v is ArrayLike<number> {
  return Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView));
}

// Bulk values are written straight into the request buffer through its DataView (little-endian; V8 compiles
// these accesses to plain loads and stores), one check per element.

// (A failing element breaks the loop and is reported after it: building the message inside the loop, even
// on a path never taken, makes V8 compile the loop several times slower.)

/** Writes int32 values (tokens); each must be an integer in the int32 range. */
function writeInt32s(w: ProtoWriter, src: ArrayLike<number>, where: string): void {
  const n = src.length;
  const view = w.view;
  const pos = w.pos;
  let i = 0;
  for (; i < n; i++) {
    const v = src[i]!;
    if ((v | 0) !== v) break;
    view.setInt32(pos + 4 * i, v, true);
  }
  if (i < n) bad(`${where}[${i}]`, `must be an integer in the int32 range, got ${String(src[i])}.`);
  w.pos = pos + 4 * n;
}

/** Writes int64 values; each must be a safe integer. */
function writeInt64s(w: ProtoWriter, src: ArrayLike<number>, where: string): void {
  const n = src.length;
  const view = w.view;
  const pos = w.pos;
  let i = 0;
  for (; i < n; i++) {
    const v = src[i]!;
    const at = pos + 8 * i;
    if ((v | 0) === v) {
      view.setInt32(at, v, true);
      view.setInt32(at + 4, v < 0 ? -1 : 0, true);
    } else {
      if (!Number.isSafeInteger(v)) break;
      const hi = Math.floor(v / 4294967296);
      view.setUint32(at, v - hi * 4294967296, true);
      view.setInt32(at + 4, hi, true);
    }
  }
  if (i < n) bad(`${where}[${i}]`, `must be a safe integer (int64 tensor), got ${String(src[i])}.`);
  w.pos = pos + 8 * n;
}

/** Writes float32 values; each must be a number (NaN and ±Infinity pass, as in the SDK). */
function writeFloat32s(w: ProtoWriter, src: ArrayLike<number>, where: string): void {
  const n = src.length;
  const view = w.view;
  const pos = w.pos;
  let i = 0;
  for (; i < n; i++) {
    const v = src[i]!;
    if (typeof v !== "number") break;
    view.setFloat32(pos + 4 * i, v, true);
  }
  if (i < n) bad(`${where}[${i}]`, `must be a number (float32 tensor), got ${typeof src[i]}.`);
  w.pos = pos + 4 * n;
}

function decodeBase64(value: unknown, where: string): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (typeof value !== "string") bad(where, `must be a base64 string, got ${typeof value}.`);
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(value)) bad(where, "is not valid base64.");
  return Buffer.from(value, "base64");
}

type PlannedChunk =
  | { kind: 1; size: number; tokens: ArrayLike<number>; inner: number }
  | { kind: 2; size: number; data: Uint8Array; format: Uint8Array; expected: number | undefined; inner: number }
  | { kind: 3; size: number; dmel: Uint8Array; inner: number };

type PlannedTensor = {
  key: Uint8Array;
  entry: number;
  size: number;
  td: TensorData;
  dtype: 1 | 2;
  elem: number;
  values: ArrayLike<number>;
  sparse: { crow: ArrayLike<number>; col: ArrayLike<number>; inner: number } | undefined;
  shape: readonly number[] | undefined;
  shapeBytes: number;
  where: string;
};

type PlannedDatum = { size: number; chunks: PlannedChunk[]; tensors: PlannedTensor[] };

function planChunk(chunk: unknown, where: string): PlannedChunk {
  if (typeof chunk !== "object" || chunk === null) bad(where, "must be a model input chunk object.");
  const c = chunk as Record<string, unknown>;
  const type = c["type"] ?? (c["tokens"] !== undefined ? "encoded_text" : undefined);
  if (type === "encoded_text") {
    const tokens = c["tokens"];
    if (!isArrayLike(tokens)) bad(`${where}.tokens`, "must be an array of token ids.");
    const inner = tokens.length > 0 ? lenFieldSize(1, tokens.length * 4) : 0;
    return { kind: 1, size: lenFieldSize(1, inner), tokens, inner };
  }
  if (type === "image") {
    const data = decodeBase64(c["data"], `${where}.data`);
    const formatValue = c["format"];
    if (formatValue !== "png" && formatValue !== "jpeg")
      bad(`${where}.format`, `must be "png" or "jpeg", got ${JSON.stringify(formatValue)}.`);
    const format = utf8(formatValue);
    const et = c["expected_tokens"];
    if (et !== undefined && et !== null && (typeof et !== "number" || (et | 0) !== et))
      bad(`${where}.expected_tokens`, "must be an int32 or null.");
    const expected = et === undefined || et === null ? undefined : (et as number);
    const inner =
      (data.length > 0 ? lenFieldSize(1, data.length) : 0) +
      lenFieldSize(2, format.length) +
      (expected === undefined ? 0 : tagSize(3) + signedVarintSize(expected));
    return { kind: 2, size: lenFieldSize(2, inner), data, format, expected, inner };
  }
  if (type === "dmel") {
    const dmel = decodeBase64(c["dmel"], `${where}.dmel`);
    const inner = dmel.length > 0 ? lenFieldSize(1, dmel.length) : 0;
    return { kind: 3, size: lenFieldSize(3, inner), dmel, inner };
  }
  return bad(
    `${where}.type`,
    `${JSON.stringify(type)} cannot be sent: the wire carries encoded_text, image and dmel chunks (upload image asset pointers as image data).`,
  );
}

function planTensor(name: string, td: unknown, where: string): PlannedTensor {
  if (typeof td !== "object" || td === null) bad(where, "must be a TensorData object ({ data, dtype, shape? }).");
  const t = td as TensorData;
  const dtype =
    t.dtype === "float32"
      ? 1
      : t.dtype === "int64"
        ? 2
        : bad(`${where}.dtype`, `must be "int64" or "float32", got ${JSON.stringify(t.dtype)}.`);
  const elem = dtype === 1 ? 4 : 8;
  const values = t.data;
  if (!isArrayLike(values)) bad(`${where}.data`, "must be an array of numbers.");
  const shape = t.shape ?? undefined;
  let shapeBytes = 0;
  if (shape !== undefined) {
    if (!Array.isArray(shape)) bad(`${where}.shape`, "must be an array of non-negative integers or null.");
    for (let i = 0; i < shape.length; i++) {
      const s = shape[i];
      if (typeof s !== "number" || !Number.isSafeInteger(s) || s < 0)
        bad(`${where}.shape[${i}]`, `must be a non-negative integer, got ${String(s)}.`);
      shapeBytes += varintSize(s);
    }
  }
  let size = tagSize(3) + varintSize(dtype) + (shapeBytes > 0 ? lenFieldSize(4, shapeBytes) : 0);
  let sparse: PlannedTensor["sparse"];
  const crow = t.sparse_crow_indices ?? undefined;
  const col = t.sparse_col_indices ?? undefined;
  if (crow !== undefined || col !== undefined) {
    if (!isArrayLike(crow) || !isArrayLike(col))
      bad(where, "needs both sparse_crow_indices and sparse_col_indices (arrays) for a sparse CSR tensor.");
    if (shape === undefined || shape.length !== 2)
      bad(`${where}.shape`, "must be the dense 2-D shape [rows, cols] of a sparse CSR tensor.");
    if (crow.length !== shape[0]! + 1)
      bad(`${where}.sparse_crow_indices`, `must have rows + 1 = ${shape[0]! + 1} entries, got ${crow.length}.`);
    if (col.length !== values.length)
      bad(`${where}.sparse_col_indices`, `must have one entry per value (${values.length}), got ${col.length}.`);
    if (crow[crow.length - 1] !== values.length)
      bad(`${where}.sparse_crow_indices`, `must end at the number of values (${values.length}), got ${String(crow[crow.length - 1])}.`);
    const inner =
      (values.length > 0 ? lenFieldSize(1, values.length * elem) : 0) +
      (crow.length > 0 ? lenFieldSize(2, crow.length * 8) : 0) +
      (col.length > 0 ? lenFieldSize(3, col.length * 8) : 0);
    sparse = { crow, col, inner };
    size += lenFieldSize(2, inner);
  } else {
    if (shape !== undefined && shape.length > 0) {
      let count = 1;
      for (const s of shape) count *= s;
      if (count !== values.length) bad(`${where}.shape`, `[${shape.join(", ")}] holds ${count} values, but data has ${values.length}.`);
    }
    size += lenFieldSize(1, values.length * elem);
  }
  const key = utf8(name);
  const entry = lenFieldSize(1, key.length) + lenFieldSize(2, size);
  return { key, entry, size, td: t, dtype, elem, values, sparse, shape, shapeBytes, where };
}

function planDatum(datum: unknown, i: number): PlannedDatum {
  const where = `data[${i}]`;
  if (typeof datum !== "object" || datum === null) bad(where, "must be a Datum ({ model_input, loss_fn_inputs }).");
  const d = datum as Datum;
  const chunks = d.model_input?.chunks;
  if (!Array.isArray(chunks)) bad(`${where}.model_input.chunks`, "must be an array of chunks.");
  const planned: PlannedDatum = { size: 0, chunks: [], tensors: [] };
  chunks.forEach((c, k) => {
    const pc = planChunk(c, `${where}.model_input.chunks[${k}]`);
    planned.chunks.push(pc);
    planned.size += lenFieldSize(1, pc.size);
  });
  const inputs = d.loss_fn_inputs;
  if (typeof inputs !== "object" || inputs === null || Array.isArray(inputs))
    bad(`${where}.loss_fn_inputs`, "must be an object of TensorData.");
  for (const [name, td] of Object.entries(inputs)) {
    const pt = planTensor(name, td, `${where}.loss_fn_inputs.${name}`);
    planned.tensors.push(pt);
    planned.size += lenFieldSize(2, pt.entry);
  }
  return planned;
}

function writeTensor(w: ProtoWriter, t: PlannedTensor): void {
  const writeValues = t.dtype === 1 ? writeFloat32s : writeInt64s;
  if (t.sparse === undefined) {
    w.lenHeader(1, t.values.length * t.elem);
    writeValues(w, t.values, `${t.where}.data`);
  } else {
    w.lenHeader(2, t.sparse.inner);
    if (t.values.length > 0) {
      w.lenHeader(1, t.values.length * t.elem);
      writeValues(w, t.values, `${t.where}.data`);
    }
    if (t.sparse.crow.length > 0) {
      w.lenHeader(2, t.sparse.crow.length * 8);
      writeInt64s(w, t.sparse.crow, `${t.where}.sparse_crow_indices`);
    }
    if (t.sparse.col.length > 0) {
      w.lenHeader(3, t.sparse.col.length * 8);
      writeInt64s(w, t.sparse.col, `${t.where}.sparse_col_indices`);
    }
  }
  w.tag(3, WT_VARINT);
  w.varint(t.dtype);
  if (t.shapeBytes > 0) {
    w.lenHeader(4, t.shapeBytes);
    for (const s of t.shape!) w.varint(s);
  }
}

function writeChunk(w: ProtoWriter, c: PlannedChunk, where: string): void {
  w.lenHeader(c.kind, c.inner);
  if (c.kind === 1) {
    if (c.tokens.length > 0) {
      w.lenHeader(1, c.tokens.length * 4);
      writeInt32s(w, c.tokens, `${where}.tokens`);
    }
  } else if (c.kind === 2) {
    if (c.data.length > 0) w.bytesField(1, c.data);
    w.bytesField(2, c.format);
    if (c.expected !== undefined) {
      w.tag(3, WT_VARINT);
      if (c.expected < 0) w.negativeVarint(c.expected);
      else w.varint(c.expected);
    }
  } else if (c.dmel.length > 0) {
    w.bytesField(1, c.dmel);
  }
}

/**
 * Encodes a `tinker_public.ForwardBackwardRequest` (the body of `POST /api/v1/forward_backward`, sent as
 * `application/x-protobuf`), field for field as the Python SDK 0.25.0 writes it: tokens as int32, dense
 * tensors in their dtype, CSR indices as int64, `forward_only` only when true.
 *
 * @throws {InvalidArgumentError} naming the offending field (e.g. `data[3].loss_fn_inputs.weights.data[7]`)
 *   when a datum cannot be encoded; nothing has been sent then.
 * @example
 * ```ts
 * const body = encodeForwardBackwardRequest({
 *   modelId: "sess-1:train:0",
 *   seqId: 1,
 *   data: [crossEntropyDatum([1, 2, 3])],
 *   lossFn: "cross_entropy",
 * });
 * // POST it with Content-Type: application/x-protobuf
 * ```
 */
export function encodeForwardBackwardRequest(input: ForwardBackwardRequestInput): Uint8Array {
  const { modelId, seqId, data, lossFn } = input;
  if (typeof modelId !== "string") bad("model_id", "must be a string.");
  if (!Number.isInteger(seqId) || (seqId | 0) !== seqId || seqId < 1) bad("seq_id", `must be an int32 ≥ 1, got ${String(seqId)}.`);
  if (!Array.isArray(data)) bad("data", "must be an array of Datum.");
  if (typeof lossFn !== "string") bad("loss_fn", "must be a string.");
  const model = utf8(modelId);
  const loss = utf8(lossFn);
  const config: Array<{ key: Uint8Array; value: number; entry: number }> = [];
  for (const [k, v] of Object.entries(input.lossFnConfig ?? {})) {
    if (typeof v !== "number") bad(`loss_fn_config.${k}`, `must be a number, got ${typeof v}.`);
    const key = utf8(k);
    config.push({ key, value: v, entry: lenFieldSize(1, key.length) + tagSize(2) + 8 });
  }
  const datums = data.map((d, i) => planDatum(d, i));
  let size = 0;
  if (model.length > 0) size += lenFieldSize(1, model.length);
  size += tagSize(2) + varintSize(seqId);
  for (const d of datums) size += lenFieldSize(3, d.size);
  if (loss.length > 0) size += lenFieldSize(4, loss.length);
  for (const c of config) size += lenFieldSize(5, c.entry);
  if (input.forwardOnly === true) size += tagSize(6) + 1;

  const w = new ProtoWriter(size);
  if (model.length > 0) w.bytesField(1, model);
  w.tag(2, WT_VARINT);
  w.varint(seqId);
  datums.forEach((d, i) => {
    w.lenHeader(3, d.size);
    d.chunks.forEach((c, k) => {
      w.lenHeader(1, c.size);
      writeChunk(w, c, `data[${i}].model_input.chunks[${k}]`);
    });
    for (const t of d.tensors) {
      w.lenHeader(2, t.entry);
      w.bytesField(1, t.key);
      w.lenHeader(2, t.size);
      writeTensor(w, t);
    }
  });
  if (loss.length > 0) w.bytesField(4, loss);
  for (const c of config) {
    w.lenHeader(5, c.entry);
    w.bytesField(1, c.key);
    w.double(2, c.value);
  }
  if (input.forwardOnly === true) {
    w.tag(6, WT_VARINT);
    w.varint(1);
  }
  if (w.pos !== size) throw new Error(`internal error: ForwardBackwardRequest size ${size} planned, ${w.pos} written`);
  return w.buf;
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

type FieldSlices = { dtype: "float32" | "int64"; trailing: number[]; datums: number[][] };

const ITEM_SIZE: Record<number, number> = { [DTYPE.FLOAT32]: 4, [DTYPE.INT64]: 8, [DTYPE.INT32]: 4, [DTYPE.BFLOAT16]: 2 };

/** Slices one BatchedTensor into per-datum number arrays, widened to the public dtypes. */
function decodeBatchedTensor(r: ProtoReader): FieldSlices {
  let dataStart = 0;
  let dataEnd = 0;
  let offsetsStart = 0;
  let offsetsEnd = 0;
  let dtype = 0;
  const trailing: number[] = [];
  for (let f = r.next(); f !== undefined; f = r.next()) {
    if (f.field === 1) {
      r.expect(f, WT_LEN, "data");
      dataStart = f.start;
      dataEnd = f.end;
    } else if (f.field === 2) {
      r.expect(f, WT_LEN, "offsets");
      offsetsStart = f.start;
      offsetsEnd = f.end;
    } else if (f.field === 3) {
      r.expect(f, WT_VARINT, "dtype");
      dtype = f.value;
    } else if (f.field === 4) {
      r.repeatedInt64(f, "trailing_shape", trailing);
    }
  }
  const item = ITEM_SIZE[dtype];
  if (item === undefined) r.fail(`dtype ${dtype} is not supported (expected FLOAT32, INT64, INT32 or BFLOAT16)`);
  const dataLen = dataEnd - dataStart;
  if (dataLen % item !== 0) r.fail(`data holds ${dataLen} bytes, not a multiple of the ${item}-byte dtype`);
  const offLen = offsetsEnd - offsetsStart;
  if (offLen % 8 !== 0) r.fail(`offsets hold ${offLen} bytes, not a multiple of 8 (int64)`);
  for (const s of trailing) if (!(s >= 0)) r.fail(`trailing_shape has a negative dimension ${s}`);
  // Aligned copies, so typed arrays can view them.
  const offBytes = r.buf.slice(offsetsStart, offsetsEnd);
  if (!LITTLE_ENDIAN) swapBytes(offBytes, 8);
  const off32 = new Int32Array(offBytes.buffer);
  const bytes = r.buf.slice(dataStart, dataEnd);
  if (!LITTLE_ENDIAN) swapBytes(bytes, item);
  const count = offLen / 8;
  const datums: number[][] = [];
  let prev = -1;
  const offsetAt = (k: number): number => {
    const hi = off32[2 * k + 1]!;
    const lo = off32[2 * k]! >>> 0;
    const v = hi * 4294967296 + lo;
    if (hi < 0 || v > dataLen) r.fail(`offsets[${k}] = ${v} is outside the ${dataLen} data bytes`);
    if (v % item !== 0) r.fail(`offsets[${k}] = ${v} is not a multiple of the ${item}-byte dtype`);
    if (v < prev) r.fail(`offsets[${k}] = ${v} is smaller than offsets[${k - 1}] = ${prev}`);
    prev = v;
    return v / item;
  };
  let start = count > 0 ? offsetAt(0) : 0;
  if (dtype === DTYPE.FLOAT32) {
    const src = new Float32Array(bytes.buffer);
    for (let k = 1; k < count; k++) {
      const end = offsetAt(k);
      const out = new Array<number>(end - start);
      for (let j = start; j < end; j++) out[j - start] = src[j]!;
      datums.push(out);
      start = end;
    }
  } else if (dtype === DTYPE.INT32) {
    const src = new Int32Array(bytes.buffer);
    for (let k = 1; k < count; k++) {
      const end = offsetAt(k);
      const out = new Array<number>(end - start);
      for (let j = start; j < end; j++) out[j - start] = src[j]!;
      datums.push(out);
      start = end;
    }
  } else if (dtype === DTYPE.BFLOAT16) {
    const src = new Uint16Array(bytes.buffer);
    const u32 = new Uint32Array(1);
    const f32 = new Float32Array(u32.buffer);
    for (let k = 1; k < count; k++) {
      const end = offsetAt(k);
      const out = new Array<number>(end - start);
      for (let j = start; j < end; j++) {
        u32[0] = src[j]! << 16;
        out[j - start] = f32[0]!;
      }
      datums.push(out);
      start = end;
    }
  } else {
    const src = new Int32Array(bytes.buffer);
    for (let k = 1; k < count; k++) {
      const end = offsetAt(k);
      const out = new Array<number>(end - start);
      for (let j = start; j < end; j++) {
        const hi = src[2 * j + 1]!;
        if (hi > 0x1fffff || hi < -0x200000) r.fail(`data[${j}] does not fit a JavaScript number exactly (beyond ±2^53)`);
        out[j - start] = hi * 4294967296 + (src[2 * j]! >>> 0);
      }
      datums.push(out);
      start = end;
    }
  }
  return { dtype: dtype === DTYPE.FLOAT32 || dtype === DTYPE.BFLOAT16 ? "float32" : "int64", trailing, datums };
}

/**
 * Decodes a `tinker_public.ForwardBackwardOutput` (a `retrieve_future` result polled with
 * `Accept: application/x-protobuf`) into the typed result, as the Python SDK 0.25.0 does: records are
 * concatenated, datum i of a field is the bytes between its int64 byte offsets i and i+1, BFLOAT16 becomes
 * float32 and INT32 int64, each tensor's shape is `[len / prod(trailing), ...trailing]`, and the output type
 * is the text after the last `:` (kept whole, default `"ArrayRecord"`, when there are no records).
 *
 * @throws {ProtoWireError} naming the field, when the bytes are not a valid ForwardBackwardOutput.
 * @example
 * ```ts
 * const out = decodeForwardBackwardOutput(new Uint8Array(await response.arrayBuffer()));
 * console.log(out.metrics["loss:sum"], out.loss_fn_outputs[0]?.["logprobs"]?.data);
 * ```
 */
export function decodeForwardBackwardOutput(bytes: Uint8Array): ForwardBackwardOutput {
  const r = new ProtoReader(bytes, "ForwardBackwardOutput");
  let outputType = "";
  const metrics: Record<string, number> = {};
  const fields = new Map<string, Array<{ dtype: "float32" | "int64"; trailing: number[]; data: number[] }>>();
  let records = 0;
  let numDatums = 0;
  for (let f = r.next(); f !== undefined; f = r.next()) {
    if (f.field === 1) outputType = r.string(f, "loss_fn_output_type");
    else if (f.field === 2) {
      r.expect(f, WT_LEN, "loss_fn_outputs");
      const rec = r.sub(f, `ForwardBackwardOutput.loss_fn_outputs[${records}]`);
      records++;
      for (let g = rec.next(); g !== undefined; g = rec.next()) {
        if (g.field === 2) {
          rec.expect(g, WT_LEN, "fields");
          const entry = rec.sub(g, `${rec.where}.fields`);
          let name = "";
          let value: FieldSlices | undefined;
          for (let h = entry.next(); h !== undefined; h = entry.next()) {
            if (h.field === 1) name = entry.string(h, "key");
            else if (h.field === 2) {
              entry.expect(h, WT_LEN, "value");
              value = decodeBatchedTensor(entry.sub(h, `${rec.where}.fields[${JSON.stringify(name)}]`));
            }
          }
          value ??= { dtype: "float32", trailing: [], datums: [] };
          let list = fields.get(name);
          if (list === undefined) {
            list = [];
            fields.set(name, list);
          }
          for (const d of value.datums) list.push({ dtype: value.dtype, trailing: value.trailing, data: d });
        } else if (g.field === 3) {
          const n = rec.signed(g, "num_datums");
          if (n < 0) rec.fail(`num_datums is negative (${n})`);
          numDatums += n;
        }
      }
    } else if (f.field === 3) {
      r.expect(f, WT_LEN, "metrics");
      const entry = r.sub(f, "ForwardBackwardOutput.metrics");
      let key = "";
      let value = 0;
      for (let h = entry.next(); h !== undefined; h = entry.next()) {
        if (h.field === 1) key = entry.string(h, "key");
        else if (h.field === 2) {
          entry.expect(h, WT_FIXED64, "value");
          value = h.value;
        }
      }
      metrics[key] = value;
    }
  }
  if (records === 0) return { loss_fn_output_type: outputType === "" ? "ArrayRecord" : outputType, loss_fn_outputs: [], metrics };
  if (numDatums === 0 && fields.size > 0) numDatums = fields.values().next().value!.length;
  const outputs: Array<Record<string, TensorData>> = [];
  for (let i = 0; i < numDatums; i++) {
    const datum: Record<string, TensorData> = {};
    for (const [name, list] of fields) {
      const slice = list[i];
      if (slice === undefined) {
        throw new ProtoWireError(
          `ForwardBackwardOutput: field ${JSON.stringify(name)} has ${list.length} datums, but num_datums is ${numDatums}`,
        );
      }
      let trailingElems = 1;
      for (const s of slice.trailing) trailingElems *= s;
      const leading = trailingElems > 0 ? Math.floor(slice.data.length / trailingElems) : 0;
      datum[name] = { data: slice.data, dtype: slice.dtype, shape: [leading, ...slice.trailing] };
    }
    outputs.push(datum);
  }
  return { loss_fn_output_type: outputType.slice(outputType.lastIndexOf(":") + 1), loss_fn_outputs: outputs, metrics };
}
