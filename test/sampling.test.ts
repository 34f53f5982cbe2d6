/**
 * Sampling against the local server, as a user sees it and as the wire shows it (PROTOCOL §10.4, decision 12):
 * the requests the SDK sends (fields, order, headers, seq_ids, the shared sampling counter), the decoded protobuf
 * result, seeded determinism across clients and restarts, bad input refused before sending, 404s naming the path,
 * the client-wide 429 back-off, outer retries with a new seq_id, and the concurrency bound.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  BadRequestError,
  InvalidArgumentError,
  InvalidTinkerPathError,
  NotFoundError,
  ServiceClient,
  startLocalServer,
  type LocalServer,
  type TrainingClient,
} from "../src/index.js";
import { BASE_MODEL, trainSteps } from "./helpers/training.js";

const PROMPT = [151644, 872, 198, 40];

function bodies(server: LocalServer, path: string): Array<Record<string, unknown>> {
  return server.requests.filter((r) => r.path === path).map((r) => (r.body ?? {}) as Record<string, unknown>);
}

describe("sampling against the local server", () => {
  let server: LocalServer;
  let dataDir: string;
  let service: ServiceClient;
  let training: TrainingClient;
  let samplerPath: string;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "tinker-sampling-"));
    server = await startLocalServer({ dataDir });
    service = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey });
    training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 8 });
    await trainSteps(training, 0, 2);
    samplerPath = (await training.saveWeightsForSampler("s1")).path;
  });

  after(async () => {
    await service.close();
    await server.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  test("the SDK's wire: unnamed save and create_sampling_session share the session's sampling counter; /asample fields in order, backpressure header, seq_id from 0 per client, protobuf poll", async () => {
    const before = server.requests.length;
    const a = await training.saveWeightsAndGetSamplingClient();
    const b = await service.createSamplingClient({ modelPath: samplerPath });
    const saves = bodies(server, "/api/v1/save_weights_for_sampler").slice(-1)[0]!;
    assert.deepEqual(Object.keys(saves), ["model_id", "sampling_session_seq_id", "seq_id", "type"]);
    const creates = bodies(server, "/api/v1/create_sampling_session");
    assert.equal(creates.length, 1);
    assert.deepEqual(Object.keys(creates[0]!), ["session_id", "sampling_session_seq_id", "model_path", "type"]);
    assert.equal(saves.sampling_session_seq_id, 0);
    assert.equal(creates[0]!.sampling_session_seq_id, 1);
    assert.notEqual(a.samplingSessionId, b.samplingSessionId);
    assert.equal(a.baseModel, BASE_MODEL);
    assert.match(a.modelPath ?? "", /^tinker:\/\/.+\/sampler_weights\//);
    assert.equal(b.modelPath, samplerPath);

    const f0 = a.sample(PROMPT, 2, { max_tokens: 4, seed: 3 });
    const f1 = a.sample(PROMPT, 1, { max_tokens: 2, seed: 3, stop: [5, 6] }, { includePromptLogprobs: true, topkPromptLogprobs: 2 });
    const g0 = b.sample(PROMPT, 1, { max_tokens: 2 });
    assert.deepEqual([f0.seqId, f1.seqId, g0.seqId], [0, 1, 0]);
    await Promise.all([f0, f1, g0]);
    const sent = server.requests.slice(before).filter((r) => r.path === "/api/v1/asample");
    assert.equal(sent.length, 3);
    for (const r of sent) {
      assert.equal(r.headers["x-tinker-sampling-backpressure"], "1");
      assert.deepEqual(Object.keys(r.body as object), [
        "num_samples",
        "prompt",
        "sampling_params",
        "sampling_session_id",
        "seq_id",
        "prompt_logprobs",
        "topk_prompt_logprobs",
        "type",
      ]);
    }
    const first = sent.find((r) => (r.body as { seq_id: number; sampling_session_id: string }).seq_id === 1)!.body as Record<
      string,
      unknown
    >;
    assert.deepEqual(first.prompt, { chunks: [{ tokens: PROMPT, type: "encoded_text" }] });
    assert.deepEqual(first.sampling_params, { max_tokens: 2, seed: 3, stop: [5, 6], temperature: 1, top_k: -1, top_p: 1 });
    assert.equal(first.prompt_logprobs, true);
    assert.equal(first.topk_prompt_logprobs, 2);
    assert.deepEqual(Object.keys((sent[2]!.body as { sampling_params: object }).sampling_params), [
      "max_tokens",
      "temperature",
      "top_k",
      "top_p",
    ]);
    const polls = server.requests
      .slice(before)
      .filter((r) => r.path === "/api/v1/retrieve_future" && r.headers["x-tinker-request-type"] === "Sample");
    assert.ok(polls.length >= 3);
    for (const p of polls) assert.match(String(p.headers.accept), /application\/x-protobuf/);

    const rest = service.createRestClient();
    assert.deepEqual(await rest.getSampler(b.samplingSessionId), {
      sampler_id: b.samplingSessionId,
      base_model: BASE_MODEL,
      model_path: samplerPath,
    });
    const session = await rest.getSession(b.samplingSessionId.split(":sample:")[0]!);
    assert.ok(session.sampler_ids.includes(a.samplingSessionId) && session.sampler_ids.includes(b.samplingSessionId));
  });

  test("the result as the user gets it: one sequence per sample, stop reasons, logprobs, prompt logprobs null at 0, top-k rows", async () => {
    const sampler = await service.createSamplingClient({ modelPath: samplerPath });
    const res = await sampler.sample(PROMPT, 3, { max_tokens: 5, seed: 11 }, { includePromptLogprobs: true, topkPromptLogprobs: 3 });
    assert.equal(res.sequences.length, 3);
    for (const s of res.sequences) {
      assert.equal(s.stop_reason, "length");
      assert.equal(s.tokens.length, 5);
      assert.equal(s.logprobs?.length, 5);
      for (const lp of s.logprobs!) assert.ok(lp < 0 && Number.isFinite(lp));
    }
    assert.equal(res.prompt_logprobs?.length, PROMPT.length);
    assert.equal(res.prompt_logprobs?.[0], null);
    for (const lp of res.prompt_logprobs!.slice(1)) assert.ok(typeof lp === "number" && lp < 0);
    const rows = res.topk_prompt_logprobs!;
    assert.equal(rows.length, PROMPT.length);
    assert.equal(rows[0], null);
    for (const row of rows.slice(1)) {
      assert.equal(row!.length, 3);
      assert.ok(row![0]![1] >= row![1]![1] && row![1]![1] >= row![2]![1]);
    }
    // a training checkpoint is accepted as well (as the service does), and a ModelInput works like an array
    const fromTraining = await service.createSamplingClient({ modelPath: (await training.saveState("for-sampling")).path });
    const viaInput = await fromTraining.sample({ chunks: [{ type: "encoded_text", tokens: PROMPT }] }, 1, { max_tokens: 2, seed: 11 });
    assert.deepEqual(
      viaInput.sequences[0]!.tokens,
      (await fromTraining.sample(PROMPT, 1, { max_tokens: 2, seed: 11 })).sequences[0]!.tokens,
    );
    const plain = await sampler.sample(PROMPT, 1, { max_tokens: 1, seed: 11 });
    assert.equal(plain.prompt_logprobs, null);
    assert.equal(plain.topk_prompt_logprobs, null);
    assert.deepEqual(plain.sequences[0]!.tokens, res.sequences[0]!.tokens.slice(0, 1));
  });

  test("the same request with the same seed gives the same tokens from another client and after a restart; without a seed, fresh draws", async () => {
    const params = { max_tokens: 6, seed: 2024, temperature: 0.9, top_p: 0.95 };
    const one = await (await service.createSamplingClient({ modelPath: samplerPath })).sample(PROMPT, 2, params);
    const other = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey });
    const two = await (await other.createSamplingClient({ modelPath: samplerPath })).sample(PROMPT, 2, params);
    await other.close();
    assert.deepEqual(two.sequences, one.sequences);
    assert.notDeepEqual(one.sequences[0]!.tokens, one.sequences[1]!.tokens);

    const unseeded = await service.createSamplingClient({ modelPath: samplerPath });
    const u1 = await unseeded.sample(PROMPT, 1, { max_tokens: 6 });
    const u2 = await unseeded.sample(PROMPT, 1, { max_tokens: 6 });
    assert.notDeepEqual(u1.sequences[0]!.tokens, u2.sequences[0]!.tokens);

    const key = server.apiKey;
    const samplerIdBefore = (await service.createSamplingClient({ modelPath: samplerPath })).samplingSessionId;
    await service.close();
    await server.close();
    server = await startLocalServer({ dataDir, apiKey: key });
    service = new ServiceClient({ baseUrl: server.baseUrl, apiKey: key });
    const again = await (await service.createSamplingClient({ modelPath: samplerPath })).sample(PROMPT, 2, params);
    assert.deepEqual(again.sequences, one.sequences);
    // the sampler created before the restart is still known
    assert.equal((await service.createRestClient().getSampler(samplerIdBefore)).model_path, samplerPath);
  });

  test("bad input is refused before anything is sent", async () => {
    const sampler = await service.createSamplingClient({ baseModel: BASE_MODEL });
    const count = (): number =>
      server.requests.filter((r) => r.path === "/api/v1/asample" || r.path === "/api/v1/create_sampling_session").length;
    const n = count();
    assert.throws(
      () => sampler.sample([], 1, { max_tokens: 1 }),
      (e: unknown) => e instanceof InvalidArgumentError && /non-empty prompt/.test(e.message),
    );
    assert.throws(() => sampler.sample({ chunks: [] }, 1, { max_tokens: 1 }), InvalidArgumentError);
    assert.throws(
      () => sampler.sample(PROMPT, 0, { max_tokens: 1 }),
      (e: unknown) => e instanceof InvalidArgumentError && /numSamples/.test(e.message),
    );
    assert.throws(
      () => sampler.sample(PROMPT, 1, { max_tokens: 0 }),
      (e: unknown) => e instanceof InvalidArgumentError && /max_tokens/.test(e.message),
    );
    assert.throws(
      () => sampler.sample(PROMPT, 1, { max_tokens: 1, top_p: 0 }),
      (e: unknown) => e instanceof InvalidArgumentError && /top_p/.test(e.message),
    );
    assert.throws(
      () => sampler.sample(PROMPT, 1, { max_tokens: 1, top_p: 1.5 }),
      (e: unknown) => e instanceof InvalidArgumentError && /top_p/.test(e.message),
    );
    assert.throws(
      () => sampler.sample([1, -2], 1, { max_tokens: 1 }),
      (e: unknown) => e instanceof InvalidArgumentError && /tokens\[1\]/.test(e.message),
    );
    assert.throws(() => sampler.computeLogprobs([]), InvalidArgumentError);
    await assert.rejects(service.createSamplingClient({}), InvalidArgumentError);
    await assert.rejects(service.createSamplingClient({ modelPath: "s3://bucket/x" }), InvalidTinkerPathError);
    await assert.rejects(service.createSamplingClient({ modelPath: "tinker://run/sampler_weights" }), InvalidTinkerPathError);
    assert.equal(count(), n);
  });

  test("a sampler for an unknown or deleted checkpoint is a 404 naming the path; what only the server can check is a 400 naming the field", async () => {
    const missing = `tinker://${training.modelId}/sampler_weights/nope`;
    await assert.rejects(
      service.createSamplingClient({ modelPath: missing }),
      (e: unknown) => e instanceof NotFoundError && e.message.includes(missing),
    );
    const t = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
    const { path } = await t.saveWeightsForSampler("doomed");
    const sampler = await service.createSamplingClient({ modelPath: path });
    await sampler.sample(PROMPT, 1, { max_tokens: 1 });
    await service.createRestClient().deleteCheckpointFromTinkerPath(path);
    await assert.rejects(
      sampler.sample(PROMPT, 1, { max_tokens: 1 }).result(),
      (e: unknown) => e instanceof NotFoundError && e.message.includes(path),
    );
    await assert.rejects(
      service.createSamplingClient({ modelPath: path }),
      (e: unknown) => e instanceof NotFoundError && e.message.includes(path),
    );

    const base = await service.createSamplingClient({ baseModel: BASE_MODEL });
    await assert.rejects(
      base.sample(PROMPT, 1, { max_tokens: 2, stop: ["\n"] }).result(),
      (e: unknown) => e instanceof BadRequestError && /sampling_params\.stop/.test(e.message) && /tokenizer/.test(e.message),
    );
    await assert.rejects(
      base.sample([1, 999_999], 1, { max_tokens: 2 }).result(),
      (e: unknown) => e instanceof BadRequestError && /prompt\.chunks\[0\]\.tokens\[1\]/.test(e.message),
    );
    await assert.rejects(
      service.createSamplingClient({ baseModel: "no/such-model" }),
      (e: unknown) => e instanceof BadRequestError && /base_model/.test(e.message),
    );
  });

  test("a 429 backs off every sampling client of the service for 1 s, then the same body is resent", async () => {
    const a = await service.createSamplingClient({ baseModel: BASE_MODEL });
    const b = await service.createSamplingClient({ baseModel: BASE_MODEL });
    const start = server.requests.length;
    server.setFaults([{ path: "/api/v1/asample", status: 429, times: 1 }]);
    const t0 = Date.now();
    const fa = a.sample(PROMPT, 1, { max_tokens: 2, seed: 1 });
    await new Promise((r) => setTimeout(r, 150)); // a has had its 429 by now
    const fb = b.sample(PROMPT, 1, { max_tokens: 2, seed: 1 });
    await Promise.all([fa, fb]);
    server.clearFaults();
    const sent = server.requests.slice(start).filter((r) => r.path === "/api/v1/asample");
    assert.equal(sent.length, 3);
    assert.equal(sent[0]!.status, 429);
    const resent = sent.slice(1).find((r) => (r.body as { sampling_session_id: string }).sampling_session_id === a.samplingSessionId)!;
    assert.deepEqual(resent.body, sent[0]!.body); // resent unchanged (same seq_id)
    for (const r of sent.slice(1)) assert.ok(r.time - sent[0]!.time >= 950, `sent ${r.time - sent[0]!.time} ms after the 429`);
    assert.ok(Date.now() - t0 >= 950);
  });

  test("the 429 back-off is 5 s for a prompt estimated over 128 KiB (10 bytes per token), 1 s otherwise", async () => {
    const long = Array.from({ length: 13_200 }, (_, i) => (i * 7919) % 150_000); // 132 000 bytes estimated
    for (const [prompt, expected] of [
      [long, 5000],
      [PROMPT, 1000],
    ] as const) {
      const slept: number[] = [];
      // A fresh ServiceClient per case (the back-off is client-wide), with a sleep that records and returns at once.
      const recording = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey, sleep: async (ms) => void slept.push(ms) });
      try {
        const sampler = await recording.createSamplingClient({ baseModel: BASE_MODEL });
        server.setFaults([{ path: "/api/v1/asample", status: 429, times: 1 }]);
        const t0 = Date.now();
        const res = await sampler.sample(prompt, 1, { max_tokens: 1, seed: 1 });
        const elapsed = Date.now() - t0;
        assert.equal(res.sequences[0]!.tokens.length, 1);
        const backoff = slept.filter((ms) => ms > 500);
        assert.equal(backoff.length, 1, `sleeps ${slept}`);
        assert.ok(backoff[0]! <= expected && backoff[0]! >= expected - elapsed, `slept ${backoff[0]} ms, expected about ${expected}`);
      } finally {
        server.clearFaults();
        await recording.close();
      }
    }
  });

  test("a sample that fails on the server side is resubmitted with a new seq_id (and a new idempotency key)", async () => {
    const sampler = await service.createSamplingClient({ baseModel: BASE_MODEL });
    const start = server.requests.length;
    server.setFaults([{ path: "/api/v1/asample", status: 503, times: 1 }]);
    const res = await sampler.sample(PROMPT, 1, { max_tokens: 2, seed: 5 });
    server.clearFaults();
    assert.equal(res.sequences[0]!.tokens.length, 2);
    const sent = server.requests.slice(start).filter((r) => r.path === "/api/v1/asample");
    assert.deepEqual(
      sent.map((r) => (r.body as { seq_id: number }).seq_id),
      [0, 1],
    );
    assert.notEqual(
      sent[0]!.headers["idempotency-key"] ?? sent[0]!.headers["x-idempotency-key"],
      sent[1]!.headers["idempotency-key"] ?? sent[1]!.headers["x-idempotency-key"],
    );
    assert.equal(sampler.nextSeqId, 2);
  });

  test("requests run concurrently up to maxConcurrentRequests (counted by a proxy that holds each /asample)", async () => {
    let inFlight = 0;
    let peak = 0;
    const proxy: Server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", async () => {
        const hold = req.url === "/api/v1/asample";
        if (hold) peak = Math.max(peak, ++inFlight);
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string" && k !== "host" && k !== "connection") headers[k] = v;
        const upstream = await fetch(`${server.baseUrl}${req.url}`, {
          method: req.method,
          headers,
          body: chunks.length ? Buffer.concat(chunks) : undefined,
        });
        const body = Buffer.from(await upstream.arrayBuffer());
        if (hold) await new Promise((r) => setTimeout(r, 120));
        res.writeHead(upstream.status, { "content-type": upstream.headers.get("content-type") ?? "application/json" });
        res.end(body);
        if (hold) inFlight--;
      });
    });
    await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", () => r()));
    const viaProxy = new ServiceClient({ baseUrl: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`, apiKey: server.apiKey });
    try {
      const bounded = await viaProxy.createSamplingClient({ baseModel: BASE_MODEL, maxConcurrentRequests: 2 });
      assert.equal(bounded.maxConcurrentRequests, 2);
      await Promise.all(Array.from({ length: 6 }, (_, i) => bounded.sample(PROMPT, 1, { max_tokens: 1, seed: i })));
      assert.equal(peak, 2);
      peak = 0;
      const wide = await viaProxy.createSamplingClient({ baseModel: BASE_MODEL });
      assert.equal(wide.maxConcurrentRequests, 2000); // the client config's sample_max_concurrent_requests (its default)
      await Promise.all(Array.from({ length: 6 }, (_, i) => wide.sample(PROMPT, 1, { max_tokens: 1, seed: i })));
      assert.ok(peak > 2, `peak ${peak}`);
      await assert.rejects(viaProxy.createSamplingClient({ baseModel: BASE_MODEL, maxConcurrentRequests: 0 }), InvalidArgumentError);
    } finally {
      await viaProxy.close();
      await new Promise<void>((r) => proxy.close(() => r()));
    }
  });
});
