/**
 * The protobuf side of the local server (PROTOCOL §10.1, Appendix B), built on the messages compiled from
 * `spec/tinker_public.proto` (generated/proto/):
 *
 * - {@link decodeForwardBackwardBody}: a `ForwardBackwardRequest` body (optionally `Content-Encoding: zstd`)
 *   becomes the JSON request shape the rest of the server validates and runs, or a 400 naming what is wrong;
 * - {@link encodeForwardBackwardResult}: a finished forward / forward_backward result becomes a
 *   `ForwardBackwardOutput` (one `ArrayRecord` per run of datums with equal field layouts; `num_datums`,
 *   `num_datums + 1` int64 byte offsets and a nonzero dtype per field).
 *
 * @module
 */

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { decompress as zstdDecompress } from "fzstd";
import {
  ArrayRecordSchema,
  BatchedTensorSchema,
  DType,
  ForwardBackwardOutputSchema,
  ForwardBackwardRequestSchema,
  type BatchedTensor,
  type ForwardBackwardRequest,
  type Tensor,
} from "../../generated/proto/tinker_public_pb.js";
import { HttpError } from "./util.js";

/** The media type of protobuf bodies. */
export const PROTOBUF_MEDIA_TYPE = "application/x-protobuf";

/** Largest decompressed forward_backward body accepted (as for plain bodies). */
const MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024;

type JsonTensor = {
  data: number[];
  dtype: "int64" | "float32";
  shape?: number[];
  sparse_crow_indices?: number[];
  sparse_col_indices?: number[];
};

function badBody(message: string, field = "body"): HttpError {
  return new HttpError(400, `invalid protobuf ForwardBackwardRequest: ${message}`, { field });
}

function int32s(bytes: Uint8Array, where: string): number[] {
  if (bytes.length % 4 !== 0) throw badBody(`${where} holds ${bytes.length} bytes, not a multiple of 4 (int32 little-endian)`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Array<number>(bytes.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = v.getInt32(i * 4, true);
  return out;
}

function int64s(bytes: Uint8Array, where: string): number[] {
  if (bytes.length % 8 !== 0) throw badBody(`${where} holds ${bytes.length} bytes, not a multiple of 8 (int64 little-endian)`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Array<number>(bytes.length / 8);
  for (let i = 0; i < out.length; i++) {
    const hi = v.getInt32(i * 8 + 4, true);
    if (hi > 0x1fffff || hi < -0x200000) throw badBody(`${where}[${i}] is beyond ±2^53, which the local server cannot represent`);
    out[i] = hi * 4294967296 + v.getUint32(i * 8, true);
  }
  return out;
}

function float32s(bytes: Uint8Array, where: string): number[] {
  if (bytes.length % 4 !== 0) throw badBody(`${where} holds ${bytes.length} bytes, not a multiple of 4 (float32 little-endian)`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Array<number>(bytes.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = v.getFloat32(i * 4, true);
  return out;
}

function tensorJson(t: Tensor, where: string): JsonTensor {
  const values = t.dtype === DType.DTYPE_FLOAT32 ? float32s : t.dtype === DType.DTYPE_INT64 ? int64s : undefined;
  if (values === undefined) {
    throw badBody(`${where}.dtype is ${t.dtype}; request tensors must be DTYPE_FLOAT32 (1) or DTYPE_INT64 (2)`);
  }
  const dtype = t.dtype === DType.DTYPE_FLOAT32 ? "float32" : "int64";
  const shape = t.shape.map((s, i) => {
    if (s < 0n || s > BigInt(Number.MAX_SAFE_INTEGER)) throw badBody(`${where}.shape[${i}] = ${s} is not a valid dimension`);
    return Number(s);
  });
  const out: JsonTensor = { data: [], dtype };
  if (shape.length > 0) out.shape = shape;
  if (t.encoding.case === "dense") {
    out.data = values(t.encoding.value, `${where}.dense`);
  } else if (t.encoding.case === "sparseCsr") {
    const csr = t.encoding.value;
    out.data = values(csr.values, `${where}.sparse_csr.values`);
    out.sparse_crow_indices = int64s(csr.crowIndices, `${where}.sparse_csr.crow_indices`);
    out.sparse_col_indices = int64s(csr.colIndices, `${where}.sparse_csr.col_indices`);
    if (shape.length !== 2) throw badBody(`${where}.shape must be the dense 2-D shape of a sparse_csr tensor, got [${shape.join(", ")}]`);
  } else {
    throw badBody(`${where} has neither dense nor sparse_csr values`);
  }
  return out;
}

/**
 * Decodes a protobuf `forward_backward` body into the JSON request shape
 * (`{model_id, seq_id, forward_backward_input: {data, loss_fn, loss_fn_config}, forward_only}`).
 *
 * @throws {HttpError} 400 naming what is wrong (undecodable bytes, zstd, a chunk or tensor, `seq_id` 0 or
 *   missing), 415 for a `Content-Encoding` other than zstd or identity.
 * @example
 * ```ts
 * const body = decodeForwardBackwardBody(rawBytes, req.headers["content-encoding"]);
 * console.log(body.seq_id, body.forward_only);
 * ```
 */
export function decodeForwardBackwardBody(raw: Uint8Array, contentEncoding: string | undefined): Record<string, unknown> {
  let bytes = raw;
  const encoding = (contentEncoding ?? "").trim().toLowerCase();
  if (encoding === "zstd") {
    try {
      bytes = zstdDecompress(raw);
    } catch (err) {
      throw badBody(`the zstd body cannot be decompressed (${(err as Error).message})`);
    }
    if (bytes.length > MAX_DECOMPRESSED_BYTES)
      throw new HttpError(413, `the decompressed request body exceeds ${MAX_DECOMPRESSED_BYTES} bytes`);
  } else if (encoding !== "" && encoding !== "identity") {
    throw new HttpError(415, `Content-Encoding ${JSON.stringify(contentEncoding)} is not supported; send zstd or an uncompressed body`);
  }
  let msg: ForwardBackwardRequest;
  try {
    msg = fromBinary(ForwardBackwardRequestSchema, bytes);
  } catch (err) {
    throw badBody(`the bytes do not decode (${(err as Error).message})`);
  }
  if (msg.seqId <= 0) {
    throw badBody(`seq_id is ${msg.seqId === 0 ? "missing or 0" : msg.seqId}; training requests are numbered from 1`, "body.seq_id");
  }
  if (msg.modelId === "") throw badBody("model_id is missing", "body.model_id");
  const data = msg.data.map((d, i) => {
    const where = `data[${i}]`;
    const chunks = d.modelInput.map((c, k) => {
      const cw = `${where}.model_input[${k}]`;
      switch (c.chunk.case) {
        case "encodedText":
          return { type: "encoded_text", tokens: int32s(c.chunk.value.tokens, `${cw}.encoded_text.tokens`) };
        case "image": {
          const img = c.chunk.value;
          const out: Record<string, unknown> = { type: "image", data: Buffer.from(img.data).toString("base64"), format: img.format };
          if (img.expectedTokens !== undefined) out["expected_tokens"] = img.expectedTokens;
          return out;
        }
        case "dmel":
          return { type: "dmel", dmel: Buffer.from(c.chunk.value.dmel).toString("base64") };
        default:
          throw badBody(`${cw} is empty (none of encoded_text, image, dmel is set)`);
      }
    });
    const inputs: Record<string, JsonTensor> = {};
    for (const [name, t] of Object.entries(d.lossFnInputs)) inputs[name] = tensorJson(t, `${where}.loss_fn_inputs.${name}`);
    return { model_input: { chunks }, loss_fn_inputs: inputs };
  });
  const input: Record<string, unknown> = { data, loss_fn: msg.lossFn };
  if (Object.keys(msg.lossFnConfig).length > 0) input["loss_fn_config"] = { ...msg.lossFnConfig };
  return { model_id: msg.modelId, seq_id: msg.seqId, forward_backward_input: input, forward_only: msg.forwardOnly };
}

/** A tensor of a result datum (the JSON result shape). */
type ResultTensor = { data: number[]; dtype: string; shape?: number[] | null };

/** One datum's layout: field names, dtypes and trailing shapes. */
function layoutOf(datum: Record<string, ResultTensor>): string {
  return JSON.stringify(Object.entries(datum).map(([k, t]) => [k, t.dtype, (t.shape ?? [t.data.length]).slice(1)]));
}

function batched(tensors: ResultTensor[]): BatchedTensor {
  const float = tensors[0]!.dtype === "float32";
  const item = float ? 4 : 8;
  let total = 0;
  for (const t of tensors) total += t.data.length;
  const data = new Uint8Array(total * item);
  const view = new DataView(data.buffer);
  const offsets = new Uint8Array((tensors.length + 1) * 8);
  const offView = new DataView(offsets.buffer);
  let pos = 0;
  tensors.forEach((t, i) => {
    offView.setBigInt64(i * 8, BigInt(pos * item), true);
    for (const v of t.data) {
      if (float) view.setFloat32(pos * 4, v, true);
      else view.setBigInt64(pos * 8, BigInt(v), true);
      pos++;
    }
  });
  offView.setBigInt64(tensors.length * 8, BigInt(pos * item), true);
  const trailing = (tensors[0]!.shape ?? [tensors[0]!.data.length]).slice(1).map((s) => BigInt(s));
  return create(BatchedTensorSchema, { data, offsets, dtype: float ? DType.DTYPE_FLOAT32 : DType.DTYPE_INT64, trailingShape: trailing });
}

/**
 * Encodes a finished forward / forward_backward result (`{loss_fn_output_type, loss_fn_outputs, metrics}`)
 * as a protobuf `ForwardBackwardOutput`.
 *
 * @example
 * ```ts
 * const bytes = encodeForwardBackwardResult({
 *   loss_fn_output_type: "ArrayRecord",
 *   loss_fn_outputs: [{ logprobs: { data: [-1.5], dtype: "float32", shape: [1] } }],
 *   metrics: { "loss:sum": 1.5 },
 * });
 * ```
 */
export function encodeForwardBackwardResult(value: Record<string, unknown>): Uint8Array {
  const type = typeof value["loss_fn_output_type"] === "string" ? (value["loss_fn_output_type"] as string) : "ArrayRecord";
  const outputs = (Array.isArray(value["loss_fn_outputs"]) ? value["loss_fn_outputs"] : []) as Array<Record<string, ResultTensor>>;
  const metrics = (typeof value["metrics"] === "object" && value["metrics"] !== null ? value["metrics"] : {}) as Record<string, number>;
  const records = [];
  let i = 0;
  while (i < outputs.length) {
    const layout = layoutOf(outputs[i]!);
    let j = i + 1;
    while (j < outputs.length && layoutOf(outputs[j]!) === layout) j++;
    const group = outputs.slice(i, j);
    const fields: Record<string, BatchedTensor> = {};
    for (const name of Object.keys(group[0]!)) fields[name] = batched(group.map((d) => d[name]!));
    records.push(create(ArrayRecordSchema, { typeTag: type, fields, numDatums: BigInt(group.length) }));
    i = j;
  }
  return toBinary(
    ForwardBackwardOutputSchema,
    create(ForwardBackwardOutputSchema, { lossFnOutputType: type, lossFnOutputs: records, metrics }),
  );
}
