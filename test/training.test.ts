/**
 * Training persistence against the local server: seq_id discipline, save/load semantics, bootstrap helpers,
 * validation before sending, and the resume proof (bit-identical losses with optimizer state).
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  APITimeoutError,
  APIUserAbortError,
  BadRequestError,
  ConfigurationError,
  ConflictError,
  crossEntropyDatum,
  InvalidArgumentError,
  InvalidCheckpointNameError,
  InvalidTinkerPathError,
  InvalidTtlError,
  NotFoundError,
  RequestFailedError,
  ServiceClient,
  startLocalServer,
  type Datum,
  type LocalServer,
  type QueueStateChange,
} from "../src/index.js";
import { ADAM, BASE_MODEL, batch, trainSteps } from "./helpers/training.js";

/** Requests the server received for one path, in arrival order. */
function seen(server: LocalServer, path: string): Array<Record<string, unknown>> {
  return server.requests.filter((r) => r.path === path).map((r) => (r.body ?? {}) as Record<string, unknown>);
}

describe("training persistence against the local server", () => {
  let server: LocalServer;
  let dataDir: string;
  let service: ServiceClient;
  const warnings: string[] = [];

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "tinker-training-"));
    server = await startLocalServer({ port: 0, dataDir });
    service = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey, logger: { warn: (m) => warnings.push(m) } });
  });
  after(async () => {
    await service.close();
    await server.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  test("seq_ids are taken at call time, in call order, starting at 1, and sent in that order", async () => {
    const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
    const futures = [
      training.forwardBackward(batch(0), "cross_entropy"),
      training.optimStep(ADAM),
      training.saveState("seq-check"),
      training.forwardBackward(batch(1), "cross_entropy"),
      training.optimStep(ADAM),
    ];
    assert.deepEqual(
      futures.map((f) => f.seqId),
      [1, 2, 3, 4, 5],
    );
    await Promise.all(futures);
    const sent = server.requests
      .filter((r) => r.method === "POST" && (r.body as { model_id?: string } | undefined)?.model_id === training.modelId)
      .map((r) => (r.body as { seq_id?: number }).seq_id)
      .filter((s): s is number => typeof s === "number");
    assert.deepEqual(sent, [1, 2, 3, 4, 5]);
  });

  test("saveState returns the tinker path; loadState sends optimizer:false and loadStateWithOptimizer optimizer:true", async () => {
    const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
    await trainSteps(training, 0, 1);
    const saved = await training.saveState("wire-check", { ttlSeconds: 7200 });
    assert.equal(saved.path, `tinker://${training.modelId}/weights/wire-check`);
    await training.loadState(saved.path);
    await training.loadStateWithOptimizer(saved.path);
    const loads = seen(server, "/api/v1/load_weights").filter((b) => b["model_id"] === training.modelId);
    assert.deepEqual(
      loads.map((b) => b["optimizer"]),
      [false, true],
    );
    assert.ok(loads.every((b) => !("load_optimizer_state" in b)));
    const save = seen(server, "/api/v1/save_weights").find((b) => b["path"] === "wire-check");
    assert.equal(save?.["ttl_seconds"], 7200);
    assert.equal(save?.["overwrite"], false);
  });

  test("saving an existing name is a ConflictError naming the checkpoint and overwrite, sent once; overwrite:true replaces it", async () => {
    const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
    await training.saveState("dupe");
    const before = seen(server, "/api/v1/save_weights").filter((b) => b["path"] === "dupe").length;
    const err = await training.saveState("dupe").then(
      () => assert.fail("expected a conflict"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ConflictError, String(err));
    assert.match(err.message, new RegExp(`tinker://${training.modelId.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/weights/dupe`));
    assert.match(err.message, /overwrite: true/);
    const after = seen(server, "/api/v1/save_weights").filter((b) => b["path"] === "dupe").length;
    assert.equal(after - before, 1, "a 409 is never retried");
    const replaced = await training.saveState("dupe", { overwrite: true });
    assert.equal(replaced.path, `tinker://${training.modelId}/weights/dupe`);
  });

  test("bad input is rejected with a typed error before anything is sent", async () => {
    const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
    const count = server.requests.length;
    assert.throws(() => training.saveState(""), InvalidCheckpointNameError);
    assert.throws(() => training.saveState("a/b"), InvalidCheckpointNameError);
    assert.throws(() => training.saveState("../escape"), InvalidCheckpointNameError);
    // The spec's name rule, which the local server enforces too (400): 1-200 of [A-Za-z0-9._-].
    assert.throws(() => training.saveState("has space"), InvalidCheckpointNameError);
    assert.throws(() => training.saveState("n".repeat(201)), /at most 200/);
    assert.throws(() => training.saveWeightsForSampler("a:b"), InvalidCheckpointNameError);
    assert.throws(() => training.saveState("épocha"), InvalidCheckpointNameError);
    assert.throws(() => training.saveState("ok", { ttlSeconds: 60 }), InvalidTtlError);
    assert.throws(() => training.saveState("ok", { ttlSeconds: 3600.5 }), InvalidTtlError);
    assert.throws(() => training.saveWeightsForSampler("ok", { ttlSeconds: 0 }), InvalidTtlError);
    assert.throws(() => training.loadState("weights/ckpt"), InvalidTinkerPathError);
    assert.throws(() => training.loadState("tinker://run/bogus/ckpt"), InvalidTinkerPathError);
    assert.throws(
      () => training.loadStateWithOptimizer(`tinker://${training.modelId}/sampler_weights/s`),
      (e: unknown) => {
        assert.ok(e instanceof InvalidArgumentError);
        assert.match(e.message, /training checkpoint/);
        return true;
      },
    );
    assert.throws(() => training.forwardBackward([], "cross_entropy"), InvalidArgumentError);
    assert.throws(() => training.optimStep({ learning_rate: Number.NaN }), InvalidArgumentError);
    await assert.rejects(service.createTrainingClientFromState(`tinker://${training.modelId}/sampler_weights/s`), InvalidArgumentError);
    await assert.rejects(
      service.createLoraTrainingClient({ baseModel: BASE_MODEL, trainMlp: false, trainAttn: false, trainUnembed: false }),
      InvalidArgumentError,
    );
    await assert.rejects(service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 0 }), InvalidArgumentError);
    assert.equal(server.requests.length, count, "nothing was sent");
    // The rejected calls burned no seq_id: the next operation still gets 1.
    assert.equal(training.optimStep(ADAM).seqId, 1);
  });

  test("resume proof: with optimizer the continuation is bit-identical; weights only diverges after the first step", async () => {
    const N = 3;
    const M = 4;
    const original = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 8, seed: 7 });
    await trainSteps(original, 0, N);
    const { path } = await original.saveState("resume-proof");
    const continued = await trainSteps(original, N, M);

    const full = await service.createTrainingClientFromStateWithOptimizer(path);
    const resumed = await trainSteps(full, N, M);
    assert.deepEqual(resumed, continued, "same losses, bit for bit");

    const weightsOnly = await service.createTrainingClientFromState(path);
    const warm = await trainSteps(weightsOnly, N, M);
    assert.equal(warm[0], continued[0], "same weights give the same first loss");
    for (let i = 1; i < M; i++) assert.notEqual(warm[i], continued[i], `step ${i} differs without the Adam state`);

    // The bootstrap read the LoRA config from the checkpoint.
    const info = await full.getInfo();
    assert.equal(info.lora_rank, 8);
  });

  test("pipelined submission gives the same results as awaiting each operation", async () => {
    const a = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4, seed: 3 });
    const b = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4, seed: 3 });
    const awaited = await trainSteps(a, 0, 5);
    const fbs = [];
    for (let s = 0; s < 5; s++) {
      fbs.push(b.forwardBackward(batch(s), "cross_entropy"));
      b.optimStep(ADAM);
    }
    const save = b.saveState("pipelined");
    const pipelined = (await Promise.all(fbs)).map((o) => o.metrics["loss:sum"]);
    assert.deepEqual(pipelined, awaited);
    assert.equal(save.seqId, 11, "the save captures the 10 operations before it");
    await save;
  });

  test("a failed load after model creation unloads the new model and throws the original error", async () => {
    const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
    const { path } = await training.saveState("cleanup");
    server.setFaults([{ path: "/api/v1/load_weights", method: "POST", times: 1, status: 400 }]);
    try {
      const err = await service.createTrainingClientFromStateWithOptimizer(path, { maxRetries: 0 }).then(
        () => assert.fail("expected the load to fail"),
        (e: unknown) => e,
      );
      assert.ok(err instanceof BadRequestError, String(err));
    } finally {
      server.clearFaults();
    }
    const creates = server.requests.filter((r) => r.path === "/api/v1/create_model");
    const unloads = seen(server, "/api/v1/unload_model");
    assert.ok(unloads.length >= 1, "the half-built model was unloaded");
    const leaked = unloads.at(-1)?.["model_id"] as string;
    assert.ok(creates.length >= 2);
    // The unloaded model is gone: training it is a 404 that says it is not loaded.
    const probe = await fetch(`${server.baseUrl}/api/v1/optim_step`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": server.apiKey },
      body: JSON.stringify({ model_id: leaked, seq_id: 1, adam_params: ADAM, type: "optim_step" }),
    });
    assert.equal(probe.status, 404);
    assert.match(await probe.text(), /unloaded|not loaded/);
  });

  test("a retried training request keeps its seq_id and idempotency key and executes once", async () => {
    const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
    await trainSteps(training, 0, 1);
    server.setFaults([{ path: "/api/v1/optim_step", method: "POST", times: 1, status: 503 }]);
    let result: Awaited<ReturnType<typeof training.optimStep>>;
    try {
      result = await training.optimStep(ADAM);
    } finally {
      server.clearFaults();
    }
    const attempts = server.requests.filter(
      (r) => r.path === "/api/v1/optim_step" && (r.body as { model_id?: string } | undefined)?.model_id === training.modelId,
    );
    const last2 = attempts.slice(-2);
    assert.equal(last2.length, 2);
    assert.equal((last2[0]?.body as { seq_id: number } | undefined)?.seq_id, (last2[1]?.body as { seq_id: number } | undefined)?.seq_id);
    assert.equal(last2[0]?.headers["x-idempotency-key"], last2[1]?.headers["x-idempotency-key"]);
    assert.equal(result?.metrics?.["step"], 2, "the optimizer stepped once, not twice");
  });

  test("a datum the model cannot take is refused with BadRequestError naming the field", async () => {
    const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
    const bad: Datum = crossEntropyDatum([1, 2, 3]);
    (bad.loss_fn_inputs["target_tokens"] as { data: number[] }).data = [1, 999_999];
    const err = await training.forwardBackward([bad], "cross_entropy").then(
      () => assert.fail("expected a failure"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof BadRequestError, String(err));
    assert.match(err.message, /target_tokens/);
  });

  test("a failed operation rejects with RequestFailedError and its category, and the model keeps working", async () => {
    const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
    const err = await training.loadState(`tinker://${training.modelId}/weights/absent`).then(
      () => assert.fail("expected a failure"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof RequestFailedError, String(err));
    assert.equal(err.category, "user");
    assert.match(err.message, /absent/);
    const ok = await training.forwardBackward(batch(0), "cross_entropy");
    assert.ok(Number.isFinite(ok.metrics["loss:sum"]));
  });

  test("loading a checkpoint that does not exist fails the future with a clear error", async () => {
    const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
    const err = await training.loadState(`tinker://${training.modelId}/weights/never-saved`).then(
      () => assert.fail("expected a failure"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof RequestFailedError || err instanceof NotFoundError, String(err));
    assert.match((err as Error).message, /never-saved/);
  });

  test("REST-only use never creates a session", async () => {
    const rest = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey });
    const sessionsBefore = server.requests.filter((r) => r.path === "/api/v1/create_session").length;
    await rest.createRestClient().listUserCheckpoints({ limit: 5 });
    await rest.getServerCapabilities();
    await rest.close();
    assert.equal(server.requests.filter((r) => r.path === "/api/v1/create_session").length, sessionsBefore);
  });
});

describe("futures, queue state and session lifecycle", () => {
  test("queue-state changes reach onQueueStateChange and a debounced 'paused: capacity' log line", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "tinker-queue-"));
    const server = await startLocalServer({ port: 0, dataDir, futureDelayMs: 150, queueState: "paused_capacity", longPollMs: 20 });
    const changes: QueueStateChange[] = [];
    const warnings: string[] = [];
    const service = new ServiceClient({
      baseUrl: server.baseUrl,
      apiKey: server.apiKey,
      onQueueStateChange: (c) => changes.push(c),
      logger: { warn: (m) => warnings.push(m) },
    });
    try {
      const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
      await Promise.all([training.optimStep(ADAM), training.optimStep(ADAM)]);
      assert.ok(changes.some((c) => c.queueState === "paused_capacity"));
      const paused = warnings.filter((w) => /paused: capacity/.test(w));
      assert.ok(paused.length >= 1, warnings.join("\n"));
      assert.ok(paused.length <= 2, "debounced: at most one line per operation kind and minute");
    } finally {
      await service.close();
      await server.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  test("result({ timeoutMs }) and abort stop waiting, say the server may still complete, and the result stays available", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "tinker-timeout-"));
    const server = await startLocalServer({ port: 0, dataDir, futureDelayMs: 400 });
    const service = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey });
    try {
      const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
      const fut = training.optimStep(ADAM);
      const timeout = await fut.result({ timeoutMs: 20 }).then(
        () => assert.fail("expected a timeout"),
        (e: unknown) => e,
      );
      assert.ok(timeout instanceof APITimeoutError);
      assert.match(timeout.message, /may still complete/);
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 10);
      await assert.rejects(fut.result({ signal: ac.signal }), APIUserAbortError);
      const done = await fut; // polling went on in the background
      assert.equal(done.metrics?.["step"], 1);
      assert.equal(await fut, done, "cached");
    } finally {
      await service.close();
      await server.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  test("heartbeats run while the session is open and stop on close (await using)", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "tinker-hb-"));
    const server = await startLocalServer({ port: 0, dataDir });
    try {
      {
        await using service = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey, heartbeatIntervalMs: 30 });
        await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 2 });
        await new Promise((r) => setTimeout(r, 150));
      }
      const beats = server.requests.filter((r) => r.path === "/api/v1/session_heartbeat").length;
      assert.ok(beats >= 2, `heartbeats sent: ${beats}`);
      await new Promise((r) => setTimeout(r, 120));
      assert.equal(server.requests.filter((r) => r.path === "/api/v1/session_heartbeat").length, beats, "none after close");
    } finally {
      await server.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  test("constructing a ServiceClient sends nothing; without configuration it says how to start the local server", async () => {
    const saved = { url: process.env["TINKER_BASE_URL"], key: process.env["TINKER_API_KEY"] };
    delete process.env["TINKER_BASE_URL"];
    delete process.env["TINKER_API_KEY"];
    try {
      assert.throws(
        () => new ServiceClient(),
        (e: unknown) => e instanceof ConfigurationError && /tinker-ts serve/.test(e.message) && /TINKER_API_KEY/.test(e.message),
      );
      assert.throws(() => new ServiceClient({ baseUrl: "http://127.0.0.1:9", apiKey: "not-a-key" }), ConfigurationError);
    } finally {
      if (saved.url !== undefined) process.env["TINKER_BASE_URL"] = saved.url;
      if (saved.key !== undefined) process.env["TINKER_API_KEY"] = saved.key;
    }
    const dataDir = await mkdtemp(join(tmpdir(), "tinker-quiet-"));
    const server = await startLocalServer({ port: 0, dataDir });
    try {
      const service = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey });
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(server.requests.length, 0);
      await service.close();
    } finally {
      await server.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
