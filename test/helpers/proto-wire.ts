/**
 * Helpers for protobuf wire tests: raw HTTP calls to the local server, protobuf overrides appended to a
 * recorded body (protobuf merges a message's fields: a later singular field wins), and a hand-built zstd frame
 * with one raw (uncompressed) block, so an override can be appended to a compressed body too (a zstd stream
 * may hold several frames; they decompress to the concatenation).
 */

/** A protobuf string/bytes field: tag, length, payload. */
export function lenField(field: number, payload: Uint8Array): Uint8Array {
  const out: number[] = [(field << 3) | 2];
  let n = payload.length;
  while (n >= 128) {
    out.push((n & 127) | 128);
    n >>>= 7;
  }
  out.push(n);
  return Uint8Array.from([...out, ...payload]);
}

/** A protobuf varint field. */
export function varintField(field: number, value: number): Uint8Array {
  const out: number[] = [field << 3];
  let n = value;
  while (n >= 128) {
    out.push((n & 127) | 128);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Uint8Array.from(out);
}

/** Bytes that, appended to a ForwardBackwardRequest, set its `model_id` (field 1). */
export function modelIdOverride(modelId: string): Uint8Array {
  return lenField(1, new TextEncoder().encode(modelId));
}

/** One zstd frame holding `content` (at most 255 bytes) in a single raw block. */
export function zstdRawFrame(content: Uint8Array): Uint8Array {
  if (content.length > 255) throw new Error("zstdRawFrame: at most 255 bytes");
  const blockHeader = 1 | (content.length << 3); // last block, raw, size
  return Uint8Array.from([
    0x28,
    0xb5,
    0x2f,
    0xfd, // magic
    0x20, // frame header: single segment, 1-byte content size, no checksum, no dictionary
    content.length,
    blockHeader & 0xff,
    (blockHeader >> 8) & 0xff,
    (blockHeader >> 16) & 0xff,
    ...content,
  ]);
}

/** Concatenates byte arrays. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(parts));
}

/** POSTs to the local server; `body` as JSON, or raw bytes with the given headers. */
export async function post(
  baseUrl: string,
  apiKey: string,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; contentType: string; json: Record<string, unknown> | undefined; bytes: Uint8Array }> {
  const raw = body instanceof Uint8Array;
  const res = await fetch(`${baseUrl}${path}`, {
    method: "POST",
    headers: { "content-type": raw ? "application/x-protobuf" : "application/json", "x-api-key": apiKey, ...headers },
    body: raw ? body : JSON.stringify(body),
  });
  const bytes = new Uint8Array(await res.arrayBuffer());
  const contentType = res.headers.get("content-type") ?? "";
  const json =
    contentType.includes("json") && bytes.length > 0
      ? (JSON.parse(Buffer.from(bytes).toString("utf8")) as Record<string, unknown>)
      : undefined;
  return { status: res.status, contentType, json, bytes };
}

/** Polls a future until it completes; returns the final answer (JSON or protobuf, as `accept` asks). */
export async function pollResult(
  baseUrl: string,
  apiKey: string,
  requestId: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; contentType: string; json: Record<string, unknown> | undefined; bytes: Uint8Array }> {
  for (let i = 0; i < 2000; i++) {
    const r = await post(baseUrl, apiKey, "/api/v1/retrieve_future", { request_id: requestId, allow_metadata_only: true }, headers);
    if (r.status === 408 || r.json?.["type"] === "try_again") continue;
    return r;
  }
  throw new Error(`request ${requestId} never completed`);
}

/** Creates a session and a model on the local server; returns the model id. */
export async function createModel(baseUrl: string, apiKey: string, baseModel = "Qwen/Qwen3-8B", rank = 4): Promise<string> {
  const s = await post(baseUrl, apiKey, "/api/v1/create_session", {
    tags: [],
    user_metadata: {},
    sdk_version: "0.25.0",
    type: "create_session",
  });
  const sessionId = s.json!["session_id"] as string;
  const m = await post(baseUrl, apiKey, "/api/v1/create_model", {
    session_id: sessionId,
    model_seq_id: 0,
    base_model: baseModel,
    lora_config: { rank, train_unembed: true, train_mlp: true, train_attn: true },
    type: "create_model",
  });
  const done = await pollResult(baseUrl, apiKey, m.json!["request_id"] as string);
  return done.json!["model_id"] as string;
}

/** Which fields of a message are maps (entries reordered by {@link canonicalMapOrder}) and which hold nested messages. */
export type MapLayout = { maps?: number[]; nested?: Record<number, MapLayout> };

/** The ForwardBackwardRequest layout: `loss_fn_config` (5) is a map; each Datum (3) has the map `loss_fn_inputs` (2). */
export const FORWARD_BACKWARD_REQUEST_MAPS: MapLayout = { maps: [5], nested: { 3: { maps: [2] } } };

/**
 * The message with the entries of each map field sorted by their bytes, everything else byte for byte as it was.
 * Protobuf map order carries no meaning, and the Python SDK's (upb) varies from process to process.
 */
export function canonicalMapOrder(buf: Uint8Array, layout: MapLayout): Uint8Array {
  const spans: Array<{ field: number; bytes: Uint8Array }> = [];
  let pos = 0;
  const varint = (): number => {
    let v = 0;
    let mul = 1;
    for (;;) {
      const b = buf[pos++]!;
      v += (b & 127) * mul;
      mul *= 128;
      if (b < 128) return v;
    }
  };
  while (pos < buf.length) {
    const start = pos;
    const key = varint();
    const field = Math.floor(key / 8);
    const wt = key % 8;
    if (wt === 0) varint();
    else if (wt === 1) pos += 8;
    else if (wt === 5) pos += 4;
    else if (wt === 2) {
      const len = varint();
      const payloadStart = pos;
      pos += len;
      const nested = layout.nested?.[field];
      if (nested !== undefined) {
        const head = buf.subarray(start, payloadStart);
        spans.push({ field, bytes: concat(head, canonicalMapOrder(buf.subarray(payloadStart, pos), nested)) });
        continue;
      }
    } else throw new Error(`wire type ${wt}`);
    spans.push({ field, bytes: buf.subarray(start, pos) });
  }
  for (const mapField of layout.maps ?? []) {
    const slots = spans.flatMap((s, i) => (s.field === mapField ? [i] : []));
    const sorted = slots.map((i) => spans[i]!.bytes).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const [k, slot] of slots.entries()) spans[slot] = { field: mapField, bytes: sorted[k]! };
  }
  return concat(...spans.map((s) => s.bytes));
}
