/**
 * Benchmark of the forward_backward wire: protobuf (what the SDK sends now) beside the old JSON body, against the
 * local server in a child process.
 *
 *   npm run bench:fwdbwd            (writes bench-results/fwdbwd.json and .md, prints a summary)
 *
 * For cross-entropy batches of 16 and 64 datums × 2 048 tokens (ids up to 151 935, weights in [0, 1]):
 * - bytes on the wire per token: the request body (protobuf vs the old JSON body) and the result body (the protobuf
 *   `ForwardBackwardOutput` vs the JSON result of the same future);
 * - client CPU per million tokens: encoding the request (`encodeForwardBackwardRequest` vs `JSON.stringify`) and
 *   decoding the result (`decodeForwardBackwardOutput` vs `JSON.parse` + the zod schema), best of 25 runs (the machine may be shared);
 * - the wall time of one forward_backward through the SDK (encode, submit, poll, decode) and of the JSON body.
 * Targets: request ≤ 16.5 B/token, result ≤ 4.2 B/token, encode + decode ≤ 25 ms per million tokens, and no
 * per-token figure growing with the batch (16 vs 64 datums).
 *
 * Until the local server accepts real vocabulary ids, it may reject ids ≥ 256: the bench then sends ids mod 256
 * for the round trips and says so (`ids_sent`); the byte counts and CPU figures are computed on the real ids either
 * way (protobuf sizes do not depend on id values; JSON sizes do, and are measured with the real ids).
 */
import { fork, type ChildProcess } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const TOKENS_PER_DATUM = 2048;
const SIZES = [16, 64];
const MAX_ID = 151935;

async function child(): Promise<void> {
  const { startLocalServer } = await import("../src/server/index.js");
  const server = await startLocalServer({ port: 0, dataDir: process.argv[3] as string });
  process.send?.({ kind: "ready", baseUrl: server.baseUrl, apiKey: server.apiKey });
  process.on("disconnect", () => {
    void server.close().then(() => process.exit(0));
  });
}

async function startChild(dataDir: string): Promise<{ proc: ChildProcess; baseUrl: string; apiKey: string }> {
  const proc = fork(fileURLToPath(import.meta.url), ["--child", dataDir], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  return new Promise((resolve, reject) => {
    proc.on("error", reject);
    proc.on("exit", (code) => reject(new Error(`server child exited with ${code}`)));
    proc.on("message", (m: { kind: string; baseUrl: string; apiKey: string }) => {
      if (m.kind === "ready") resolve({ proc, baseUrl: m.baseUrl, apiKey: m.apiKey });
    });
  });
}

/** Deterministic pseudo-random datums: `n` × 2048 input tokens, ids below `maxId + 1`, weights in [0, 1]. */
function makeBatch(n: number, maxId: number) {
  let s = 12345;
  const rnd = (): number => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s / 4294967296;
  };
  return Array.from({ length: n }, () => {
    const full = Array.from({ length: TOKENS_PER_DATUM + 1 }, () => Math.floor(rnd() * (maxId + 1)));
    const weights = Array.from({ length: TOKENS_PER_DATUM }, () => Math.round(rnd() * 4) / 4);
    return {
      model_input: { chunks: [{ type: "encoded_text" as const, tokens: full.slice(0, -1) }] },
      loss_fn_inputs: {
        target_tokens: { data: full.slice(1), dtype: "int64" as const, shape: [TOKENS_PER_DATUM] },
        weights: { data: weights, dtype: "float32" as const, shape: [TOKENS_PER_DATUM] },
      },
    };
  });
}

/** CPU ms (user + system) of the fastest of `runs` runs of `fn`, after `warmup` runs. */
function cpuMs(fn: () => unknown, runs = 25, warmup = 5): number {
  for (let i = 0; i < warmup; i++) fn();
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const before = process.cpuUsage();
    fn();
    const d = process.cpuUsage(before);
    best = Math.min(best, (d.user + d.system) / 1000);
  }
  return best;
}

async function poll(
  baseUrl: string,
  apiKey: string,
  requestId: string,
  accept: string,
  type: string,
): Promise<{ contentType: string; bytes: Uint8Array }> {
  for (let failures = 0; ; ) {
    let res: Response;
    try {
      res = await fetch(`${baseUrl}/api/v1/retrieve_future`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-api-key": apiKey, accept, "x-tinker-request-type": type },
        body: JSON.stringify({ request_id: requestId, allow_metadata_only: true }),
      });
    } catch (err) {
      // A keep-alive connection the busy server closed: poll again, as the SDK does.
      if (++failures > 5) throw err;
      continue;
    }
    const bytes = new Uint8Array(await res.arrayBuffer());
    const contentType = res.headers.get("content-type") ?? "";
    if (res.status === 408) continue;
    if (contentType.includes("json")) {
      const j = JSON.parse(Buffer.from(bytes).toString("utf8")) as Record<string, unknown>;
      if (j["type"] === "try_again") continue;
      if ("error" in j) throw new Error(`forward_backward failed: ${String(j["error"])}`);
    }
    return { contentType, bytes };
  }
}

async function main(): Promise<void> {
  const { ServiceClient } = await import("../src/index.js");
  const { encodeForwardBackwardRequest, decodeForwardBackwardOutput } = await import("../src/internal/proto/forward-backward.js");
  const { ForwardBackwardOutputSchema } = await import("../src/internal/schemas.js");
  const work = await mkdtemp(join(tmpdir(), "tinker-bench-fwdbwd-"));
  const server = await startChild(join(work, "data"));
  const service = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey });
  const results: Record<string, unknown> = {
    date: new Date().toISOString(),
    node: process.version,
    machine: `${cpus().length} cores`,
    tokens_per_datum: TOKENS_PER_DATUM,
  };
  const runs: Array<Record<string, unknown>> = [];
  try {
    const training = await service.createLoraTrainingClient({ baseModel: "Qwen/Qwen3-8B", rank: 8 });
    // A second model takes the old JSON bodies (sent by raw HTTP, with their own seq_ids).
    const jsonModel = await service.createLoraTrainingClient({ baseModel: "Qwen/Qwen3-8B", rank: 8 });
    let jsonSeq = 1;
    // Does the server take real vocabulary ids?
    let idsSent = `real (up to ${MAX_ID})`;
    let sendMaxId = MAX_ID;
    try {
      await training.forward(
        makeBatch(1, MAX_ID).map((d) => ({ ...d })),
        "cross_entropy",
      );
    } catch (err) {
      idsSent = `ids mod 256: the server refused real ids (${(err as Error).message.split("\n")[0]!.slice(0, 160)})`;
      sendMaxId = 255;
    }
    results["ids_sent"] = idsSent;
    for (const n of SIZES) {
      const tokens = n * TOKENS_PER_DATUM;
      const perM = 1e6 / tokens;
      const batch = makeBatch(n, MAX_ID);
      const sendBatch = sendMaxId === MAX_ID ? batch : makeBatch(n, sendMaxId);
      const jsonBody = (data: typeof batch, seq: number) => ({
        forward_backward_input: { data, loss_fn: "cross_entropy" },
        model_id: training.modelId,
        seq_id: seq,
        type: "forward_backward",
      });
      // Request bytes, on the real ids.
      const protoReq = encodeForwardBackwardRequest({ modelId: training.modelId, seqId: 1, data: batch, lossFn: "cross_entropy" });
      const jsonReq = Buffer.byteLength(JSON.stringify(jsonBody(batch, 1)));
      // One round trip through the SDK (protobuf), timed.
      const t0 = performance.now();
      const fut = training.forwardBackward(sendBatch, "cross_entropy");
      const out = await fut;
      const sdkWallMs = performance.now() - t0;
      if (out.loss_fn_outputs.length !== n) throw new Error(`expected ${n} outputs, got ${out.loss_fn_outputs.length}`);
      const id = await fut.requestId;
      const protoRes = await poll(server.baseUrl, server.apiKey, id, "application/x-protobuf", "ForwardBackward");
      const jsonRes = await poll(server.baseUrl, server.apiKey, id, "application/json", "ForwardBackward");
      if (!protoRes.contentType.includes("protobuf") || !jsonRes.contentType.includes("json"))
        throw new Error("unexpected result content types");
      // The old JSON body, one round trip (raw HTTP: the SDK no longer sends it).
      const t1 = performance.now();
      const jsonSubmit = await fetch(`${server.baseUrl}/api/v1/forward_backward`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-api-key": server.apiKey },
        body: JSON.stringify({ ...jsonBody(sendBatch, jsonSeq++), model_id: jsonModel.modelId }),
      });
      const submitted = (await jsonSubmit.json()) as { request_id: string };
      if (jsonSubmit.status !== 200)
        throw new Error(`the JSON submit failed: ${jsonSubmit.status} ${JSON.stringify(submitted).slice(0, 300)}`);
      const jsonResult = await poll(server.baseUrl, server.apiKey, submitted.request_id, "application/json", "ForwardBackward");
      JSON.parse(Buffer.from(jsonResult.bytes).toString("utf8"));
      const jsonWallMs = performance.now() - t1;
      // Result fields, for the per-field view.
      const fields = Object.keys(out.loss_fn_outputs[0] ?? {});
      // Client CPU.
      const encodeMs = cpuMs(() =>
        encodeForwardBackwardRequest({ modelId: training.modelId, seqId: 1, data: batch, lossFn: "cross_entropy" }),
      );
      const decodeMs = cpuMs(() => decodeForwardBackwardOutput(protoRes.bytes));
      const jsonEncodeMs = cpuMs(() => JSON.stringify(jsonBody(batch, 1)), 5, 1);
      const jsonText = Buffer.from(jsonRes.bytes).toString("utf8");
      const jsonDecodeMs = cpuMs(() => ForwardBackwardOutputSchema.parse(JSON.parse(jsonText)), 5, 1);
      runs.push({
        datums: n,
        tokens,
        result_fields: fields,
        protobuf: {
          request_bytes_per_token: +(protoReq.length / tokens).toFixed(3),
          result_bytes_per_token: +(protoRes.bytes.length / tokens).toFixed(3),
          result_bytes_per_token_per_float32_field: +(protoRes.bytes.length / tokens / Math.max(1, fields.length)).toFixed(3),
          encode_cpu_ms_per_million_tokens: +(encodeMs * perM).toFixed(2),
          decode_cpu_ms_per_million_tokens: +(decodeMs * perM).toFixed(2),
          encode_plus_decode_cpu_ms_per_million_tokens: +((encodeMs + decodeMs) * perM).toFixed(2),
          sdk_round_trip_wall_ms: +sdkWallMs.toFixed(1),
        },
        json: {
          request_bytes_per_token: +(jsonReq / tokens).toFixed(3),
          result_bytes_per_token: +(jsonRes.bytes.length / tokens).toFixed(3),
          encode_cpu_ms_per_million_tokens: +(jsonEncodeMs * perM).toFixed(2),
          decode_cpu_ms_per_million_tokens: +(jsonDecodeMs * perM).toFixed(2),
          encode_plus_decode_cpu_ms_per_million_tokens: +((jsonEncodeMs + jsonDecodeMs) * perM).toFixed(2),
          round_trip_wall_ms: +jsonWallMs.toFixed(1),
        },
      });
      console.log(`${n} datums done`);
    }
  } finally {
    await service.close();
    server.proc.disconnect();
    await rm(work, { recursive: true, force: true });
  }
  results["runs"] = runs;
  const big = runs.at(-1)!["protobuf"] as Record<string, number>;
  const small = runs[0]!["protobuf"] as Record<string, number>;
  const growth = (k: string) => +((big[k] as number) / (small[k] as number)).toFixed(3);
  results["targets"] = {
    request_bytes_per_token: { target: 16.5, measured: big["request_bytes_per_token"], meets: big["request_bytes_per_token"]! <= 16.5 },
    result_bytes_per_token: { target: 4.2, measured: big["result_bytes_per_token"], meets: big["result_bytes_per_token"]! <= 4.2 },
    encode_plus_decode_cpu_ms_per_million_tokens: {
      target: 25,
      measured: big["encode_plus_decode_cpu_ms_per_million_tokens"],
      meets: big["encode_plus_decode_cpu_ms_per_million_tokens"]! <= 25,
    },
    per_token_growth_64_vs_16: {
      request_bytes: growth("request_bytes_per_token"),
      result_bytes: growth("result_bytes_per_token"),
      encode_cpu: growth("encode_cpu_ms_per_million_tokens"),
      decode_cpu: growth("decode_cpu_ms_per_million_tokens"),
      note: "≈ 1 means the cost grows with the batch, not faster (CPU ratios are noisy on a shared machine)",
    },
  };
  const outDir = fileURLToPath(new URL("../bench-results/", import.meta.url));
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, "fwdbwd.json"), JSON.stringify(results, null, 2) + "\n");
  await writeFile(join(outDir, "fwdbwd.md"), markdown(results, runs));
  console.log(JSON.stringify(results, null, 2));
  console.log("wrote bench-results/fwdbwd.json and bench-results/fwdbwd.md");
}

function markdown(results: Record<string, unknown>, runs: Array<Record<string, unknown>>): string {
  const rows = runs.flatMap((r) => {
    const p = r["protobuf"] as Record<string, number>;
    const j = r["json"] as Record<string, number>;
    return [
      `| ${String(r["datums"])} × ${TOKENS_PER_DATUM} | protobuf | ${p["request_bytes_per_token"]} | ${p["result_bytes_per_token"]} | ${p["encode_cpu_ms_per_million_tokens"]} | ${p["decode_cpu_ms_per_million_tokens"]} | ${p["sdk_round_trip_wall_ms"]} |`,
      `| ${String(r["datums"])} × ${TOKENS_PER_DATUM} | JSON (old body) | ${j["request_bytes_per_token"]} | ${j["result_bytes_per_token"]} | ${j["encode_cpu_ms_per_million_tokens"]} | ${j["decode_cpu_ms_per_million_tokens"]} | ${j["round_trip_wall_ms"]} |`,
    ];
  });
  const t = results["targets"] as Record<string, Record<string, unknown>>;
  return `# forward_backward wire benchmark (\`npm run bench:fwdbwd\`)

${String(results["date"])}, Node ${String(results["node"])}, ${String(results["machine"])}; local server in a child process.
Cross-entropy datums of ${TOKENS_PER_DATUM} tokens, ids up to ${MAX_ID}, weights in [0, 1]. Ids sent to the server: ${String(results["ids_sent"])}.
Result fields returned by the server: ${JSON.stringify(runs[0]?.["result_fields"])}.

| batch | wire | request B/token | result B/token | encode CPU ms / M tokens | decode CPU ms / M tokens | round trip wall ms |
|---|---|---|---|---|---|---|
${rows.join("\n")}

Targets (64 datums): request ≤ 16.5 B/token: ${String(t["request_bytes_per_token"]!["measured"])} (${t["request_bytes_per_token"]!["meets"] ? "met" : "NOT met"});
result ≤ 4.2 B/token: ${String(t["result_bytes_per_token"]!["measured"])} (${t["result_bytes_per_token"]!["meets"] ? "met" : "NOT met"});
encode + decode ≤ 25 CPU ms per million tokens: ${String(t["encode_plus_decode_cpu_ms_per_million_tokens"]!["measured"])} (${t["encode_plus_decode_cpu_ms_per_million_tokens"]!["meets"] ? "met" : "NOT met"}).
Per-token growth from 16 to 64 datums (1 = linear in the batch): ${JSON.stringify(t["per_token_growth_64_vs_16"])}.

The result carries one float32 per token per field; with \`logprobs\` only (PROTOCOL §11.1) it is about 4 B/token.
`;
}

if (process.argv[2] === "--child") {
  void child();
} else {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
