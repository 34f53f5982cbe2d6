/**
 * Chunking of `forward` / `forward_backward` as the official SDK does it (PROTOCOL §10.2): the byte estimate
 * of a datum, the split rule, and the combination of the chunks' results by metric suffix.
 *
 * Everything here is pure: no I/O, no clock. The dispatch (seq ids, turns, the byte budget) lives in
 * `fwdbwd.ts`.
 *
 * @module
 */
import type { components } from "../../generated/schema.js";

type Datum = components["schemas"]["Datum"];
type ForwardBackwardOutput = components["schemas"]["ForwardBackwardOutput"];

/** The chunk limits of the client config (§10.3). */
export interface ChunkLimits {
  /** `fwdbwd_max_chunk_len`: datums per chunk at most. */
  maxChunkLen: number;
  /** `fwdbwd_max_chunk_bytes_count`: estimated bytes per chunk at most (a larger datum goes alone). */
  maxChunkBytes: number;
}

/** One chunk of a split call: its datums and their estimated size. */
export interface Chunk {
  data: Datum[];
  bytes: number;
}

/** Bytes of a raw-bytes field: a `Uint8Array`'s length, or the decoded length of a base64 string. */
function rawLength(value: unknown): number {
  if (value instanceof Uint8Array) return value.byteLength;
  if (typeof value === "string") {
    const s = value.replace(/[\s=]+$/u, "");
    return Math.floor((s.length * 3) / 4);
  }
  return 0;
}

function chunkBytes(chunk: Record<string, unknown>): number {
  switch (chunk["type"]) {
    case "dmel":
      return rawLength(chunk["dmel"]);
    case "image":
      return rawLength(chunk["data"]);
    case "image_asset_pointer":
      return typeof chunk["location"] === "string" ? Buffer.byteLength(chunk["location"]) : 0;
    default: {
      const tokens = chunk["tokens"];
      return 4 * (Array.isArray(tokens) || ArrayBuffer.isView(tokens) ? (tokens as ArrayLike<number>).length : 0);
    }
  }
}

function tensorBytes(td: Record<string, unknown>): number {
  const data = td["data"] as ArrayLike<unknown> | undefined;
  const itemSize = td["dtype"] === "int64" ? 8 : 4;
  let bytes = (data?.length ?? 0) * itemSize;
  const crow = td["sparse_crow_indices"] as ArrayLike<unknown> | null | undefined;
  const col = td["sparse_col_indices"] as ArrayLike<unknown> | null | undefined;
  if (crow !== undefined && crow !== null) bytes += 8 * crow.length;
  if (col !== undefined && col !== null) bytes += 8 * col.length;
  return bytes;
}

/**
 * The SDK's size estimate of a datum on the protobuf wire, without framing: 4 bytes per token; the raw length
 * of dmel / image data (an asset pointer's `location`); per tensor, elements × 4 (float32) or × 8 (int64), plus
 * 8 bytes per CSR index.
 *
 * @example
 * ```ts
 * estimateDatumBytes(crossEntropyDatum([1, 2, 3, 4])); // 3·4 tokens + 3·8 targets + 3·4 weights = 48
 * ```
 */
export function estimateDatumBytes(datum: Datum): number {
  let bytes = 0;
  for (const chunk of datum.model_input.chunks) bytes += chunkBytes(chunk as unknown as Record<string, unknown>);
  for (const td of Object.values(datum.loss_fn_inputs ?? {})) bytes += tensorBytes(td as unknown as Record<string, unknown>);
  return bytes;
}

/**
 * Splits `data` into chunks in order: before adding a datum, the current chunk is closed when it is non-empty
 * and the datum would take it over `maxChunkBytes`, or when it already holds `maxChunkLen` datums. So an
 * oversized datum travels alone. Empty `data` gives no chunk.
 *
 * @example
 * ```ts
 * const chunks = splitIntoChunks(batch, { maxChunkLen: 1024, maxChunkBytes: 5_000_000 });
 * console.log(chunks.length, chunks.map((c) => c.bytes));
 * ```
 */
export function splitIntoChunks(data: readonly Datum[], limits: ChunkLimits): Chunk[] {
  const chunks: Chunk[] = [];
  let current: Datum[] = [];
  let bytes = 0;
  for (const datum of data) {
    const est = estimateDatumBytes(datum);
    if ((current.length > 0 && bytes + est > limits.maxChunkBytes) || current.length === limits.maxChunkLen) {
      chunks.push({ data: current, bytes });
      current = [];
      bytes = 0;
    }
    current.push(datum);
    bytes += est;
  }
  if (current.length > 0) chunks.push({ data: current, bytes });
  return chunks;
}

// ------------------------------------------------------------------------------------------ combining

/** The reductions the SDK knows (the part of a metric key after its one `:`). */
export const METRIC_REDUCTIONS = ["mean", "sum", "min", "max", "slack", "hash_unordered", "unique"] as const;

/** A metric key is not `name:reduction` with exactly one colon, or a reduction cannot be computed. */
export class MetricCombineError extends Error {
  override name = "MetricCombineError";
}

/**
 * numpy's float64 `np.sum` of a 1-D array (its pairwise summation: 8 accumulators per block of up to 128,
 * halves above), so combined metrics match the Python SDK to the bit.
 */
export function numpySum(xs: readonly number[]): number {
  return xs.length === 0 ? 0 : pairwiseSum(xs, 0, xs.length);
}

function pairwiseSum(a: readonly number[], start: number, n: number): number {
  if (n < 8) {
    let res = -0;
    for (let i = 0; i < n; i++) res += a[start + i]!;
    return res;
  }
  if (n <= 128) {
    const r = [0, 0, 0, 0, 0, 0, 0, 0];
    for (let j = 0; j < 8; j++) r[j] = a[start + j]!;
    let i = 8;
    for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j]! += a[start + i + j]!;
    let res = r[0]! + r[1]! + (r[2]! + r[3]!) + (r[4]! + r[5]! + (r[6]! + r[7]!));
    for (; i < n; i++) res += a[start + i]!;
    return res;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return pairwiseSum(a, start, n2) + pairwiseSum(a, start + n2, n - n2);
}

/** `np.average(xs, weights=ws)` with integer weights; throws when the weights sum to 0 (Python: ZeroDivisionError). */
function weightedMean(xs: readonly number[], ws: readonly number[]): number {
  const total = ws.reduce((s, w) => s + w, 0);
  if (total === 0) throw new MetricCombineError("a mean metric cannot be combined: no chunk returned any output (weights sum to 0)");
  return numpySum(xs.map((x, i) => x * ws[i]!)) / total;
}

const MASK64 = (1n << 64n) - 1n;
const MODULUS = (1n << 61n) - 1n;
const XXPRIME_1 = 11400714785074694791n;
const XXPRIME_2 = 14029467366897019727n;
const XXPRIME_5 = 2870177450012600261n;

/** CPython's `hash(int)`: the value modulo 2^61 − 1 with the sign kept, and −1 mapped to −2. */
export function pythonIntHash(value: bigint): bigint {
  const abs = value < 0n ? -value : value;
  let h = abs % MODULUS;
  if (value < 0n) h = -h;
  return h === -1n ? -2n : h;
}

/** CPython's (3.8+) `hash(tuple_of_ints)`, xxHash-based, as a signed 64-bit value. */
export function pythonTupleHash(values: readonly bigint[]): bigint {
  let acc = XXPRIME_5;
  for (const v of values) {
    const lane = pythonIntHash(v) & MASK64;
    acc = (acc + lane * XXPRIME_2) & MASK64;
    acc = ((acc << 31n) | (acc >> 33n)) & MASK64;
    acc = (acc * XXPRIME_1) & MASK64;
  }
  acc = (acc + (BigInt(values.length) ^ (XXPRIME_5 ^ 3527539n))) & MASK64;
  if (acc === MASK64) return 1546275796n;
  return acc >= 1n << 63n ? acc - (1n << 64n) : acc;
}

/**
 * The SDK's `hash_unordered` reduction: `hash(tuple(sorted(int(v) for v in values)))`, `int` truncating
 * toward zero. Returned exactly as a bigint; the metric holds it as the nearest double.
 */
export function hashUnordered(values: readonly number[]): bigint {
  const ints = values.map((v) => {
    if (!Number.isFinite(v)) throw new MetricCombineError(`a hash_unordered metric holds ${v}, which has no integer value`);
    return BigInt(Math.trunc(v));
  });
  ints.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return pythonTupleHash(ints);
}

/**
 * Combines the results of a split call as the SDK does: outputs concatenated in seq order, the output type of
 * chunk 1, and each of chunk 1's metrics reduced by its suffix (`sum`, `min`, `max`; `mean` and `slack`
 * weighted by the datums per chunk; `hash_unordered`; `unique` as `key`, `key_1`, …). A key without exactly one
 * colon fails the result; unknown reductions and keys missing in some chunk are dropped. Also applied to a
 * single chunk.
 *
 * @throws {MetricCombineError} for a key that is not `name:reduction`, or a mean over zero outputs.
 * @example
 * ```ts
 * const out = combineOutputs([
 *   { loss_fn_output_type: "ArrayRecord", loss_fn_outputs: [{}, {}], metrics: { "loss:sum": 3, "acc:mean": 0.5 } },
 *   { loss_fn_output_type: "ArrayRecord", loss_fn_outputs: [{}], metrics: { "loss:sum": 1, "acc:mean": 1 } },
 * ]);
 * console.log(out.metrics); // { "loss:sum": 4, "acc:mean": 0.666… } (the mean weighted by outputs per chunk)
 * ```
 */
export function combineOutputs(results: readonly ForwardBackwardOutput[]): ForwardBackwardOutput {
  if (results.length === 0) return { loss_fn_output_type: "", loss_fn_outputs: [], metrics: {} };
  const first = results[0]!;
  const weights = results.map((r) => r.loss_fn_outputs.length);
  const metrics: Record<string, number> = {};
  for (const key of Object.keys(first.metrics)) {
    const parts = key.split(":");
    if (parts.length !== 2) {
      throw new MetricCombineError(`metric key ${JSON.stringify(key)} is not "name:reduction" with exactly one colon`);
    }
    const reduction = parts[1]!;
    if (!(METRIC_REDUCTIONS as readonly string[]).includes(reduction)) continue;
    if (!results.every((r) => Object.hasOwn(r.metrics, key))) continue;
    const values = results.map((r) => r.metrics[key]!);
    switch (reduction) {
      case "sum":
        metrics[key] = numpySum(values);
        break;
      case "min":
        metrics[key] = values.some(Number.isNaN) ? NaN : Math.min(...values);
        break;
      case "max":
        metrics[key] = values.some(Number.isNaN) ? NaN : Math.max(...values);
        break;
      case "mean":
        metrics[key] = weightedMean(values, weights);
        break;
      case "slack":
        metrics[key] = (values.some(Number.isNaN) ? NaN : Math.max(...values)) - weightedMean(values, weights);
        break;
      case "hash_unordered":
        metrics[key] = Number(hashUnordered(values));
        break;
      case "unique":
        metrics[key] = values[0]!;
        values.slice(1).forEach((v, i) => {
          metrics[`${key}_${i + 1}`] = v;
        });
        break;
    }
  }
  return {
    loss_fn_output_type: first.loss_fn_output_type,
    loss_fn_outputs: results.flatMap((r) => r.loss_fn_outputs),
    metrics,
  };
}
