/**
 * The local server against the official Python SDK's wire behaviour, replayed from the recorded request
 * sequence of PROTOCOL.md Appendix A: the same bodies, the same headers (X-Stainless-*, a fresh
 * stainless-python idempotency key per request, raw `:` in run ids, `allow_metadata_only: true` polls, empty
 * publish bodies, `ttl_seconds: null`), checking what that SDK reads from each answer. (The SDK itself cannot be
 * installed here: PyPI is unreachable. This pins the wire facts it depends on.)
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startLocalServer } from "../../src/index.js";

type Json = Record<string, unknown>;

test("the recorded Python SDK 0.25.0 request sequence works end to end", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "tinker-python-wire-"));
  const server = await startLocalServer({ port: 0, dataDir });
  const base = `${server.baseUrl}/`; // the SDK enforces a trailing slash and appends paths without their "/"
  const headers = (method: string, extra: Record<string, string> = {}): Record<string, string> => ({
    accept: "application/json",
    ...(method === "GET" ? {} : { "content-type": "application/json" }),
    "user-agent": "AsyncTinker/Python 0.25.0",
    "x-stainless-package-version": "0.25.0",
    "x-stainless-os": "Linux",
    "x-stainless-arch": "x64",
    "x-stainless-runtime": "CPython",
    "x-stainless-runtime-version": "3.11.7",
    "x-stainless-async": "async:asyncio",
    "x-stainless-retry-count": "0",
    "x-stainless-read-timeout": "60",
    ...(method === "GET" ? {} : { "x-idempotency-key": `stainless-python-retry-${randomUUID()}` }),
    "x-api-key": server.apiKey,
    "accept-encoding": "gzip, deflate, zstd",
    ...extra,
  });
  const call = async (method: string, path: string, body?: unknown, extra?: Record<string, string>) => {
    const res = await fetch(base + path, {
      method,
      headers: headers(method, extra),
      ...(body === undefined ? (method === "GET" ? {} : { body: "" }) : { body: JSON.stringify(body) }),
      redirect: "manual",
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, json: (text === "" ? undefined : JSON.parse(text)) as Json };
  };
  /** The SDK's poller: allow_metadata_only true, iteration headers, try_again re-polled at once. */
  const poll = async (requestId: string, type: string): Promise<Json> => {
    for (let iteration = 0; iteration < 1000; iteration++) {
      const extra: Record<string, string> = {
        "x-tinker-request-iteration": String(iteration),
        "x-tinker-request-type": type,
        "x-stainless-raw-response": "raw",
        "x-stainless-read-timeout": "45",
      };
      if (iteration === 0) extra["x-tinker-create-promise-roundtrip-time"] = "0.01";
      const r = await call("POST", "api/v1/retrieve_future", { request_id: requestId, allow_metadata_only: true }, extra);
      if (r.status === 408) continue;
      assert.equal(r.status, 200, JSON.stringify(r.json));
      if (r.json["type"] === "try_again") continue;
      assert.notEqual(r.json["status"], "complete_metadata", "small results are inlined");
      return r.json;
    }
    throw new Error("never completed");
  };
  /** A success must not contain an `error` key at all: the SDK treats any `error` key as a failure. */
  const success = (j: Json): Json => {
    assert.ok(!("error" in j), `success payload has an error key: ${JSON.stringify(j)}`);
    return j;
  };

  try {
    const config = await call("POST", "api/v1/client/config", { sdk_version: "0.25.0" });
    assert.equal(config.status, 200);
    assert.equal(config.json["use_pyqwest_transport"], false);
    assert.equal(config.json["pjwt_auth_enabled"], false);
    const dynamic = await call("POST", "api/v1/client/dynamic_config", { sdk_version: "0.25.0" });
    assert.ok(dynamic.status === 200 || dynamic.status === 404);

    const session = await call("POST", "api/v1/create_session", {
      tags: [],
      user_metadata: {},
      sdk_version: "0.25.0",
      type: "create_session",
    });
    assert.equal(session.status, 200);
    const sessionId = session.json["session_id"] as string;
    assert.equal(typeof sessionId, "string");

    const create = await call("POST", "api/v1/create_model", {
      session_id: sessionId,
      model_seq_id: 0,
      base_model: "Qwen/Qwen3-8B",
      user_metadata: { k: "v" },
      lora_config: { rank: 8, train_unembed: true, train_mlp: true, train_attn: true },
      type: "create_model",
    });
    assert.equal(create.status, 200);
    const created = success(await poll(create.json["request_id"] as string, "CreateModel"));
    const modelId = created["model_id"] as string;
    assert.ok(modelId.includes(":"), "run ids contain ':' like the service's");

    const submit = async (path: string, body: Json, type: string): Promise<Json> => {
      const r = await call("POST", path, body);
      assert.equal(r.status, 200, `${path}: ${JSON.stringify(r.json)}`);
      return success(await poll(r.json["request_id"] as string, type));
    };
    const adam = { learning_rate: 0.0001, beta1: 0.9, beta2: 0.95, eps: 1e-12, weight_decay: 0.0, grad_clip_norm: 0.0 };
    await submit("api/v1/optim_step", { adam_params: adam, model_id: modelId, seq_id: 1, type: "optim_step" }, "OptimStep");
    const save1 = await submit(
      "api/v1/save_weights",
      { model_id: modelId, path: "ckpt-1", seq_id: 2, ttl_seconds: 3600, overwrite: false, type: "save_weights" },
      "SaveWeights",
    );
    assert.equal(save1["path"], `tinker://${modelId}/weights/ckpt-1`);
    await submit(
      "api/v1/save_weights",
      { model_id: modelId, path: "ckpt-2", seq_id: 3, overwrite: false, type: "save_weights" },
      "SaveWeights",
    );
    await submit(
      "api/v1/load_weights",
      { model_id: modelId, seq_id: 4, path: `tinker://${modelId}/weights/ckpt-1`, optimizer: true, type: "load_weights" },
      "LoadWeights",
    );
    const sampler = await submit(
      "api/v1/save_weights_for_sampler",
      { model_id: modelId, path: "samp-1", seq_id: 5, type: "save_weights_for_sampler" },
      "SaveWeightsForSampler",
    );
    assert.equal(sampler["path"], `tinker://${modelId}/sampler_weights/samp-1`, "named sampler saves must return a path");

    const info = await call("POST", "api/v1/get_info", { model_id: modelId, type: "get_info" });
    assert.equal(info.status, 200);
    assert.equal(info.json["model_id"], modelId);
    assert.equal(typeof info.json["model_data"], "object");

    const weights = await call("POST", "api/v1/weights_info", { tinker_path: `tinker://${modelId}/weights/ckpt-1` });
    assert.deepEqual(
      { base: weights.json["base_model"], lora: weights.json["is_lora"], rank: weights.json["lora_rank"] },
      { base: "Qwen/Qwen3-8B", lora: true, rank: 8 },
    );

    // create_training_client_from_state: a second model, then a weights-only load at seq_id 1.
    const create2 = await call("POST", "api/v1/create_model", {
      session_id: sessionId,
      model_seq_id: 1,
      base_model: "Qwen/Qwen3-8B",
      lora_config: { rank: 8, train_unembed: true, train_mlp: true, train_attn: true },
      type: "create_model",
    });
    const model2 = success(await poll(create2.json["request_id"] as string, "CreateModel"))["model_id"] as string;
    assert.notEqual(model2, modelId);
    await submit(
      "api/v1/load_weights",
      { model_id: model2, seq_id: 1, path: `tinker://${modelId}/weights/ckpt-1`, optimizer: false, type: "load_weights" },
      "LoadWeights",
    );

    // REST, with the run id interpolated raw (colons unencoded), as the SDK's f-strings do.
    const list = await call("GET", `api/v1/training_runs/${modelId}/checkpoints`);
    assert.equal(list.status, 200);
    const ids = (list.json["checkpoints"] as Json[]).map((c) => c["checkpoint_id"]).sort();
    assert.deepEqual(ids, ["sampler_weights/samp-1", "weights/ckpt-1", "weights/ckpt-2"]);
    for (const c of list.json["checkpoints"] as Json[]) {
      assert.ok(c["checkpoint_type"] === "training" || c["checkpoint_type"] === "sampler");
      assert.ok(!Number.isNaN(Date.parse(c["time"] as string)), "time is a datetime");
    }
    const user = await call("GET", "api/v1/checkpoints?limit=1&offset=0");
    assert.equal((user.json["checkpoints"] as Json[]).length, 1);
    assert.deepEqual(Object.keys(user.json["cursor"] as Json).sort(), ["limit", "offset", "total_count"]);
    const runs = await call("GET", "api/v1/training_runs?limit=2&offset=0&access_scope=owned");
    assert.equal(runs.status, 200);
    assert.ok(((runs.json["cursor"] as Json)["total_count"] as number) >= 2, "TrainingRunsResponse.cursor is required");
    const run = await call("GET", `api/v1/training_runs/${modelId}?access_scope=owned`);
    assert.equal(run.status, 200);
    assert.ok(!Number.isNaN(Date.parse(run.json["last_request_time"] as string)), "last_request_time is required");
    const meta = run.json["user_metadata"] as Json | null | undefined;
    assert.ok(
      meta === null || meta === undefined || Object.values(meta).every((v) => typeof v === "string"),
      "user_metadata values are strings",
    );

    // The archive: 302 with an absolute Location (urllib fetches it as is) and a parseable Expires.
    const archive = await call("GET", `api/v1/training_runs/${modelId}/checkpoints/weights/ckpt-1/archive`);
    assert.equal(archive.status, 302);
    const location = archive.headers.get("location");
    assert.ok(location !== null && /^https?:\/\//.test(location), `absolute Location: ${location}`);
    assert.ok(!Number.isNaN(Date.parse(archive.headers.get("expires") ?? "")), "Expires is an HTTP date");
    const download = await fetch(location, { headers: { "user-agent": "Python-urllib/3.11" } });
    assert.equal(download.status, 200, "the signed URL needs no key");
    await download.arrayBuffer();

    // Publish/unpublish with an empty body; TTL null (remove) and a too-short TTL (400, as on the service).
    const ckpt = `api/v1/training_runs/${modelId}/checkpoints/weights/ckpt-1`;
    assert.ok((await call("POST", `${ckpt}/publish`)).status < 300);
    assert.ok((await call("DELETE", `${ckpt}/publish`)).status < 300);
    assert.ok((await call("PUT", `${ckpt}/ttl`, { ttl_seconds: null })).status < 300);
    assert.equal((await call("PUT", `${ckpt}/ttl`, { ttl_seconds: 60 })).status, 400);
    assert.ok((await call("DELETE", `api/v1/training_runs/${modelId}/checkpoints/sampler_weights/samp-1`)).status < 300);

    const sessions = await call("GET", "api/v1/sessions?limit=20&offset=0&access_scope=owned");
    assert.ok((sessions.json["sessions"] as string[]).includes(sessionId));
    const one = await call("GET", `api/v1/sessions/${sessionId}?access_scope=owned`);
    assert.ok((one.json["training_run_ids"] as string[]).includes(modelId));
    assert.ok(Array.isArray(one.json["sampler_ids"]));
    const caps = await call("GET", "api/v1/get_server_capabilities");
    const names = (caps.json["supported_models"] as Json[]).map((m) => m["model_name"]);
    assert.ok(names.includes("Qwen/Qwen3-8B") && names.includes("meta-llama/Llama-3.2-1B"));

    const beat = await call(
      "POST",
      "api/v1/session_heartbeat",
      { session_id: sessionId, type: "session_heartbeat" },
      { "x-stainless-read-timeout": "10" },
    );
    assert.equal(beat.status, 200);
    const telemetry = await call("POST", "api/v1/telemetry", {
      events: [
        { event: "SESSION_START", event_id: randomUUID(), event_session_index: 0, severity: "INFO", timestamp: new Date().toISOString() },
      ],
      platform: "linux",
      sdk_version: "0.25.0",
      session_id: sessionId,
      process_uuid: randomUUID(),
    });
    assert.deepEqual(telemetry.json, { status: "accepted" });
  } finally {
    await server.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});
