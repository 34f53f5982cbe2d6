/**
 * safetensors reading and writing (F64 written; F64 and F32 read), as used for the tiny model's adapter
 * weights and optimizer state.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { isObject, ModelInputError, shapeStr, type ParsedSafetensors, type SafetensorsTensor } from "./types.js";

/** Upper bound on the JSON header size accepted by {@link parseSafetensors}. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

const DTYPE_BYTES: Record<string, number> = { F64: 8, F32: 4 };

/**
 * Serializes float64 tensors and string metadata into a safetensors file (dtype F64).
 *
 * @example
 * ```ts
 * const buf = writeSafetensors(new Map([["w", { shape: [2], data: Float64Array.from([1, 2]) }]]), { step: "3" });
 * ```
 */
export function writeSafetensors(
  tensors: ReadonlyMap<string, SafetensorsTensor> | Readonly<Record<string, SafetensorsTensor>>,
  metadata: Readonly<Record<string, string>> = {},
): Buffer {
  const entries: Array<[string, SafetensorsTensor]> =
    tensors instanceof Map ? [...(tensors as ReadonlyMap<string, SafetensorsTensor>).entries()] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, t] of entries) {
    if (name === "__metadata__") throw new ModelInputError(`safetensors: "__metadata__" is not a valid tensor name`);
    if (name in header) throw new ModelInputError(`safetensors: duplicate tensor name "${name}"`);
    if (!t.shape.every((s) => Number.isSafeInteger(s) && s >= 0)) {
      throw new ModelInputError(`safetensors: tensor "${name}" has an invalid shape ${shapeStr(t.shape)}`);
    }
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (numel !== t.data.length) {
      throw new ModelInputError(`safetensors: tensor "${name}" has ${t.data.length} values but shape ${shapeStr(t.shape)} needs ${numel}`);
    }
    const bytes = numel * 8;
    header[name] = { dtype: "F64", shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== "string") throw new ModelInputError(`safetensors: metadata "${k}" must be a string`);
  }
  header.__metadata__ = { ...metadata };
  let json = Buffer.from(JSON.stringify(header), "utf8");
  const pad = (8 - (json.length % 8)) % 8; // keep the data section 8-byte aligned
  if (pad > 0) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const out = Buffer.alloc(8 + json.length + offset);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  let pos = 8 + json.length;
  for (const [, t] of entries) {
    const data = t.data;
    for (let i = 0; i < data.length; i++) {
      out.writeDoubleLE(data[i]!, pos);
      pos += 8;
    }
  }
  return out;
}

/**
 * Parses a safetensors file holding F64 or F32 tensors; throws {@link ModelInputError} if malformed.
 *
 * @example
 * ```ts
 * const { tensors, metadata } = parseSafetensors(buf);
 * ```
 */
export function parseSafetensors(buf: Buffer): ParsedSafetensors {
  const bad = (msg: string): never => {
    throw new ModelInputError(`invalid safetensors: ${msg}`);
  };
  if (!((buf as unknown) instanceof Uint8Array)) bad("input is not a buffer");
  if (buf.length < 8) bad(`file is ${buf.length} bytes, too short for the 8-byte header length`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const headerLen64 = view.getBigUint64(0, true);
  if (headerLen64 > BigInt(buf.length - 8)) bad(`header length ${headerLen64} exceeds file size ${buf.length}`);
  if (headerLen64 > BigInt(MAX_HEADER_BYTES)) bad(`header length ${headerLen64} exceeds ${MAX_HEADER_BYTES} bytes`);
  const headerLen = Number(headerLen64);
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(buf.buffer, buf.byteOffset + 8, headerLen).toString("utf8"));
  } catch (err) {
    bad(`header is not valid JSON (${(err as Error).message})`);
  }
  if (!isObject(header)) return bad("header is not a JSON object");
  const dataStart = 8 + headerLen;
  const dataLen = buf.length - dataStart;
  const tensors = new Map<string, SafetensorsTensor>();
  const metadata: Record<string, string> = {};
  const ranges: Array<[number, number, string]> = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") {
      if (!isObject(entry)) bad(`"__metadata__" must be an object`);
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== "string") bad(`metadata "${k}" must be a string`);
        metadata[k] = v as string;
      }
      continue;
    }
    if (!isObject(entry)) return bad(`tensor "${name}" entry must be an object`);
    const { dtype, shape, data_offsets: offsets } = entry;
    if (typeof dtype !== "string") return bad(`tensor "${name}" has no dtype`);
    const size = DTYPE_BYTES[dtype];
    if (size === undefined) return bad(`tensor "${name}" has unsupported dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every((s) => Number.isSafeInteger(s) && (s as number) >= 0)) {
      return bad(`tensor "${name}" has an invalid shape`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)) {
      return bad(`tensor "${name}" has invalid data_offsets`);
    }
    const [start, end] = offsets as [number, number];
    if (start > end || end > dataLen) {
      return bad(`tensor "${name}" data_offsets [${start}, ${end}] are outside the data section (${dataLen} bytes)`);
    }
    const dims = shape as number[];
    const numel = dims.reduce((a, b) => a * b, 1);
    if (end - start !== numel * size) {
      return bad(`tensor "${name}" spans ${end - start} bytes but shape ${shapeStr(dims)} x ${dtype} needs ${numel * size}`);
    }
    ranges.push([start, end, name]);
    const data = new Float64Array(numel);
    const base = dataStart + start;
    if (size === 8) for (let i = 0; i < numel; i++) data[i] = view.getFloat64(base + i * 8, true);
    else for (let i = 0; i < numel; i++) data[i] = view.getFloat32(base + i * 4, true);
    tensors.set(name, { shape: [...dims], data });
  }
  ranges.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  for (let i = 1; i < ranges.length; i++) {
    const prev = ranges[i - 1]!;
    const cur = ranges[i]!;
    if (cur[0] < prev[1]) bad(`tensors "${prev[2]}" and "${cur[2]}" overlap`);
  }
  return { tensors, metadata };
}
