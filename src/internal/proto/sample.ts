/**
 * Decoding of `tinker_public.SampleResponse` (the `/asample` result polled with
 * `Accept: application/x-protobuf`, PROTOCOL §10.4) into the SDK's typed sample result.
 *
 * @module
 */
import { LITTLE_ENDIAN, ProtoReader, ProtoWireError, WT_LEN, WT_VARINT, swapBytes, type ProtoField } from "./wire.js";

/**
 * The empty cell of a top-k prompt logprob row: `(0, -99999.0)`.
 *
 * @example
 * ```ts
 * const empty = (token: number, lp: number) => token === 0 && lp === TOPK_MASK_LOGPROB;
 * ```
 */
export const TOPK_MASK_LOGPROB = -99999;

/** One sampled sequence: `stop_reason` (`"stop"` | `"length"`), `tokens` and their `logprobs`. */
export interface SampledSequence {
  /** `"stop"` (a stop condition or end-of-sequence) or `"length"` (`max_tokens` reached). */
  stop_reason: "stop" | "length";
  /** The sampled token ids. */
  tokens: number[];
  /** Logprob per sampled token, or null when the server sent none. */
  logprobs: number[] | null;
}

/**
 * The result of `SamplingClient.sample`, decoded from protobuf (the wire JSON shape of the Python SDK's list views):
 * `sequences`, and when asked `prompt_logprobs` (`null` where there is none, e.g. position 0) and
 * `topk_prompt_logprobs` (per position up to k `[token, logprob]` pairs, empty cells dropped; `null` for a position
 * without any).
 */
export interface SampleResponse {
  sequences: SampledSequence[];
  /** Logprob per prompt token (null where there is none, e.g. position 0), or null when not requested. */
  prompt_logprobs: (number | null)[] | null;
  /** Per prompt position, up to k `[token, logprob]` pairs (null for a position without any), or null. */
  topk_prompt_logprobs: ([number, number][] | null)[] | null;
  /** Prompt tokens billed as prefix-cache hits. */
  prompt_cache_hit_tokens: number;
}

function aligned(r: ProtoReader, f: ProtoField, name: string, size: number): Uint8Array {
  const bytes = r.bytes(f, name);
  if (bytes.length % size !== 0) r.fail(`${name} holds ${bytes.length} bytes, not a multiple of ${size}`);
  if (!LITTLE_ENDIAN) swapBytes(bytes, size);
  return bytes;
}

function toNumbers(view: Int32Array | Float32Array): number[] {
  const out = new Array<number>(view.length);
  for (let i = 0; i < view.length; i++) out[i] = view[i]!;
  return out;
}

/**
 * Decodes a `tinker_public.SampleResponse` as the Python SDK 0.25.0 does: `stop_reason` 0 → `"stop"`,
 * 1 → `"length"` (anything else fails); tokens int32; empty logprobs → null; prompt logprobs with NaN → null;
 * top-k rows (prompt_length × k, row-major) where a row starting with the empty cell `(0, -99999)` is null
 * and trailing empty cells are dropped.
 *
 * @throws {ProtoWireError} naming the field, when the bytes are not a valid SampleResponse.
 * @example
 * ```ts
 * const res = decodeSampleResponse(new Uint8Array(await response.arrayBuffer()));
 * console.log(res.sequences[0]?.tokens, res.sequences[0]?.stop_reason);
 * ```
 */
export function decodeSampleResponse(bytes: Uint8Array): SampleResponse {
  const r = new ProtoReader(bytes, "SampleResponse");
  const sequences: SampledSequence[] = [];
  let promptLogprobs: (number | null)[] | null = null;
  let topk: SampleResponse["topk_prompt_logprobs"] = null;
  let cacheHits = 0;
  for (let f = r.next(); f !== undefined; f = r.next()) {
    if (f.field === 1) {
      r.expect(f, WT_LEN, "sequences");
      const s = r.sub(f, `SampleResponse.sequences[${sequences.length}]`);
      let stop = 0;
      let tokens: number[] = [];
      let logprobs: number[] | null = null;
      for (let g = s.next(); g !== undefined; g = s.next()) {
        if (g.field === 1) {
          s.expect(g, WT_VARINT, "stop_reason");
          stop = g.value;
        } else if (g.field === 2) tokens = toNumbers(new Int32Array(aligned(s, g, "tokens", 4).buffer));
        else if (g.field === 3) {
          const lp = aligned(s, g, "logprobs", 4);
          logprobs = lp.length === 0 ? null : toNumbers(new Float32Array(lp.buffer));
        }
      }
      if (stop !== 0 && stop !== 1) s.fail(`stop_reason ${stop} is unknown (expected 0 = stop or 1 = length)`);
      sequences.push({ stop_reason: stop === 0 ? "stop" : "length", tokens, logprobs });
    } else if (f.field === 2) {
      const lp = aligned(r, f, "prompt_logprobs", 4);
      if (lp.length > 0) {
        const view = new Float32Array(lp.buffer);
        promptLogprobs = new Array<number | null>(view.length);
        for (let i = 0; i < view.length; i++) {
          const v = view[i]!;
          promptLogprobs[i] = Number.isNaN(v) ? null : v;
        }
      }
    } else if (f.field === 3) {
      r.expect(f, WT_LEN, "topk_prompt_logprobs");
      topk = decodeTopk(r.sub(f, "SampleResponse.topk_prompt_logprobs"));
    } else if (f.field === 4) {
      cacheHits = r.signed(f, "prompt_cache_hit_tokens");
    }
  }
  return { sequences, prompt_logprobs: promptLogprobs, topk_prompt_logprobs: topk, prompt_cache_hit_tokens: cacheHits };
}

function decodeTopk(r: ProtoReader): SampleResponse["topk_prompt_logprobs"] {
  let ids: Uint8Array = new Uint8Array(0);
  let lps: Uint8Array = new Uint8Array(0);
  let k = 0;
  let n = 0;
  for (let f = r.next(); f !== undefined; f = r.next()) {
    if (f.field === 1) ids = aligned(r, f, "token_ids", 4);
    else if (f.field === 2) lps = aligned(r, f, "logprobs", 4);
    else if (f.field === 3) {
      r.expect(f, WT_VARINT, "k");
      k = f.value;
    } else if (f.field === 4) {
      r.expect(f, WT_VARINT, "prompt_length");
      n = f.value;
    }
  }
  if (n === 0 || k === 0) return null;
  if (ids.length !== n * k * 4 || lps.length !== n * k * 4) {
    throw new ProtoWireError(
      `SampleResponse.topk_prompt_logprobs: prompt_length ${n} × k ${k} needs ${n * k * 4} bytes each of token_ids and logprobs, got ${ids.length} and ${lps.length}`,
    );
  }
  const tid = new Int32Array(ids.buffer);
  const lp = new Float32Array(lps.buffer);
  const rows: ([number, number][] | null)[] = [];
  for (let i = 0; i < n; i++) {
    const start = i * k;
    if (tid[start] === 0 && lp[start] === TOPK_MASK_LOGPROB) {
      rows.push(null);
      continue;
    }
    let end = start + k;
    while (end > start && tid[end - 1] === 0 && lp[end - 1] === TOPK_MASK_LOGPROB) end--;
    const row: [number, number][] = [];
    for (let j = start; j < end; j++) row.push([tid[j]!, lp[j]!]);
    rows.push(row);
  }
  return rows;
}
