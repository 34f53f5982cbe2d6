// The local server's contract: every endpoint of the spec over real HTTP, with each response body
// validated by ajv against the spec's schema for that operation and status.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import Ajv2020 from "ajv/dist/2020.js";
import openapi from "../../generated/openapi.json" with { type: "json" };
import { startLocalServer, type LocalServer } from "../../src/server/index.js";

// ---------------------------------------------------------------------------------------------
// Spec validation with ajv
// ---------------------------------------------------------------------------------------------

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const ajv = new Ajv2020.default({ strict: false, allErrors: true });
ajv.addFormat("date-time", (s: string) => ISO.test(s) && !Number.isNaN(Date.parse(s)));
ajv.addSchema(openapi as object, "openapi.json");

// biome-ignore lint/suspicious/noExplicitAny: untyped JSON from the wire, checked field by field
type AnyJson = any;
const doc = openapi as AnyJson;
const validators = new Map<string, ReturnType<typeof ajv.compile>>();

/** Asserts that `body` matches the spec's response schema of `method template` for `status`. */
function assertSpec(method: string, template: string, status: number, body: unknown): void {
  const op = doc.paths[template]?.[method.toLowerCase()];
  assert.ok(op, `spec has no ${method} ${template}`);
  let response = op.responses[String(status)] ?? op.responses.default;
  assert.ok(response, `spec declares no ${status} for ${method} ${template}`);
  if (response.$ref) response = doc.components.responses[response.$ref.split("/").pop()];
  const schema = response.content?.["application/json"]?.schema;
  if (!schema) {
    assert.equal(body, undefined, `${method} ${template} ${status} declares no body`);
    return;
  }
  assert.ok(schema.$ref, "response schemas are $refs");
  const key = schema.$ref as string;
  let validate = validators.get(key);
  if (!validate) {
    validate = ajv.compile({ $ref: `openapi.json${key}` });
    validators.set(key, validate);
  }
  assert.ok(validate(body), `${method} ${template} ${status}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(body)}`);
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers
// ---------------------------------------------------------------------------------------------

type Res = { status: number; headers: Headers; body: AnyJson; text: string };

function clientFor(server: LocalServer, defaultKey: string) {
  return async (
    method: string,
    path: string,
    body?: unknown,
    opts: { key?: string | null; raw?: string; headers?: Record<string, string> } = {},
  ): Promise<Res> => {
    const headers: Record<string, string> = { ...opts.headers };
    const key = opts.key === undefined ? defaultKey : opts.key;
    if (key !== null) headers["x-api-key"] = key;
    let payload: string | undefined = opts.raw;
    if (body !== undefined) payload = JSON.stringify(body);
    if (payload !== undefined) headers["content-type"] = "application/json";
    const r = await fetch(`${server.baseUrl}${path}`, { method, headers, body: payload, redirect: "manual" });
    const text = await r.text();
    let parsed: unknown;
    try {
      parsed = text === "" ? undefined : JSON.parse(text);
    } catch {
      parsed = text;
    }
    assert.ok(r.headers.get("x-request-id"), `${method} ${path}: every response carries x-request-id`);
    return { status: r.status, headers: r.headers, body: parsed, text };
  };
}

type Call = ReturnType<typeof clientFor>;

async function result(call: Call, requestId: string): Promise<AnyJson> {
  for (let i = 0; i < 200; i++) {
    const r = await call("POST", "/api/v1/retrieve_future", { request_id: requestId, allow_metadata_only: true });
    assert.equal(r.status, 200, r.text);
    assertSpec("POST", "/api/v1/retrieve_future", 200, r.body);
    if (r.body.type !== "try_again") return r.body;
  }
  throw new Error("future never completed");
}

function datum(tokens: number[]): AnyJson {
  return {
    model_input: { chunks: [{ type: "encoded_text", tokens }] },
    loss_fn_inputs: {
      target_tokens: { data: tokens.map((t) => (t + 1) % 256), dtype: "int64" },
      weights: { data: tokens.map(() => 1), dtype: "float32" },
    },
  };
}

const RUNS = "/api/v1/training_runs/{training_run_id}";
const CKPT = `${RUNS}/checkpoints/{checkpoint_kind}/{checkpoint_name}`;

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

describe("local server contract", () => {
  let server: LocalServer;
  let call: Call;
  let other: Call;
  let clockOffset = 0;
  const otherKey = "tml-other-user";
  let sessionId = "";
  let modelId = "";
  let seq = 0;

  before(async () => {
    server = await startLocalServer({ extraApiKeys: [otherKey], clock: () => Date.now() + clockOffset });
    call = clientFor(server, server.apiKey);
    other = clientFor(server, otherKey);
  });
  after(async () => {
    await server.close();
  });

  async function submit(path: string, body: AnyJson): Promise<AnyJson> {
    const r = await call("POST", path, body);
    assert.equal(r.status, 200, r.text);
    assertSpec("POST", path, 200, r.body);
    assert.equal(typeof r.body.request_id, "string");
    return result(call, r.body.request_id);
  }

  test("bootstrap endpoints: healthz, client config, capabilities, sessions, telemetry", async () => {
    const health = await call("GET", "/api/v1/healthz", undefined, { key: null });
    assert.equal(health.status, 200);
    assertSpec("GET", "/api/v1/healthz", 200, health.body);

    const config = await call("POST", "/api/v1/client/config", { sdk_version: "0.25.0" });
    assertSpec("POST", "/api/v1/client/config", 200, config.body);
    assert.equal(config.body.use_pyqwest_transport, false);
    assert.equal(config.body.pjwt_auth_enabled, false);
    assert.equal(config.body.create_model_via_load_weights, false);

    const dyn = await call("POST", "/api/v1/client/dynamic_config", { sdk_version: "0.25.0" });
    assertSpec("POST", "/api/v1/client/dynamic_config", 200, dyn.body);

    const caps = await call("GET", "/api/v1/get_server_capabilities");
    assertSpec("GET", "/api/v1/get_server_capabilities", 200, caps.body);
    const names = caps.body.supported_models.map((m: AnyJson) => m.model_name);
    assert.ok(names.includes("Qwen/Qwen3-8B") && names.includes("meta-llama/Llama-3.2-1B"));
    assert.ok(caps.body.supported_models.every((m: AnyJson) => Number.isInteger(m.max_context_length)));

    const session = await call("POST", "/api/v1/create_session", {
      tags: ["a"],
      user_metadata: { k: 1 },
      sdk_version: "0.25.0",
      type: "create_session",
    });
    assertSpec("POST", "/api/v1/create_session", 200, session.body);
    sessionId = session.body.session_id;

    const hb = await call("POST", "/api/v1/session_heartbeat", { session_id: sessionId, type: "session_heartbeat" });
    assertSpec("POST", "/api/v1/session_heartbeat", 200, hb.body);
    const hbOther = await other("POST", "/api/v1/session_heartbeat", { session_id: sessionId });
    assert.equal(hbOther.status, 404);

    const tel = await call("POST", "/api/v1/telemetry", {
      events: [{ event: "SESSION_START" }],
      platform: "x",
      sdk_version: "0.25.0",
      session_id: sessionId,
      process_uuid: "u",
    });
    assert.deepEqual(tel.body, { status: "accepted" });
    assertSpec("POST", "/api/v1/telemetry", 200, tel.body);
  });

  test("auth: 401 without or with an unknown key; errors are JSON with detail", async () => {
    for (const key of [null, "tml-wrong"]) {
      const r = await call("GET", "/api/v1/training_runs", undefined, { key });
      assert.equal(r.status, 401);
      assert.equal(typeof r.body.detail, "string");
      assertSpec("GET", "/api/v1/training_runs", 401, r.body);
    }
    const unknown = await call("GET", "/api/v1/no_such_route");
    assert.equal(unknown.status, 404);
    assert.equal(typeof unknown.body.detail, "string");
    const wrongMethod = await call("DELETE", "/api/v1/healthz");
    assert.equal(wrongMethod.status, 405);
    const notApi = await call("GET", "/elsewhere");
    assert.equal(notApi.status, 404);
  });

  test("create_model, get_info and the training operations return futures whose results match the spec", async () => {
    const created = await submit("/api/v1/create_model", {
      session_id: sessionId,
      model_seq_id: 0,
      base_model: "Qwen/Qwen3-8B",
      user_metadata: { purpose: "contract", n: 3 },
      lora_config: { rank: 4, seed: 7, train_unembed: true, train_mlp: true, train_attn: true },
      type: "create_model",
    });
    assert.equal(created.type, "create_model");
    modelId = created.model_id;
    assert.equal(modelId, `${sessionId}:train:0`);

    const info = await call("POST", "/api/v1/get_info", { model_id: modelId, type: "get_info" });
    assertSpec("POST", "/api/v1/get_info", 200, info.body);
    assert.equal(info.body.lora_rank, 4);
    assert.equal((await other("POST", "/api/v1/get_info", { model_id: modelId })).status, 404);

    const fb = await submit("/api/v1/forward_backward", {
      model_id: modelId,
      seq_id: ++seq,
      forward_backward_input: { data: [datum([1, 2, 3]), datum([4, 5])], loss_fn: "cross_entropy" },
      type: "forward_backward",
    });
    assert.equal(fb.loss_fn_outputs.length, 2);
    assert.equal(typeof fb.metrics["loss:sum"], "number");
    assert.ok(!("error" in fb));

    const step = await submit("/api/v1/optim_step", {
      model_id: modelId,
      seq_id: ++seq,
      adam_params: { learning_rate: 0.01, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0, grad_clip_norm: 0 },
      type: "optim_step",
    });
    assert.equal(step.metrics.step, 1);

    const saved = await submit("/api/v1/save_weights", {
      model_id: modelId,
      path: "ckpt-1",
      seq_id: ++seq,
      overwrite: false,
      type: "save_weights",
    });
    assert.deepEqual(saved, { path: `tinker://${modelId}/weights/ckpt-1`, type: "save_weights" });

    const named = await submit("/api/v1/save_weights_for_sampler", {
      model_id: modelId,
      path: "samp-1",
      seq_id: ++seq,
      type: "save_weights_for_sampler",
    });
    assert.equal(named.path, `tinker://${modelId}/sampler_weights/samp-1`);
    const unnamed = await submit("/api/v1/save_weights_for_sampler", { model_id: modelId, sampling_session_seq_id: 0, seq_id: ++seq });
    assert.equal(typeof unnamed.sampling_session_id, "string");
    assert.match(unnamed.path, /sampler_weights\//);

    for (const optimizer of [true, false]) {
      const loaded = await submit("/api/v1/load_weights", {
        model_id: modelId,
        seq_id: ++seq,
        path: `tinker://${modelId}/weights/ckpt-1`,
        optimizer,
        type: "load_weights",
      });
      assert.equal(loaded.type, "load_weights");
      assert.equal(loaded.path, `tinker://${modelId}/weights/ckpt-1`);
    }
  });

  test("a failed operation is a RequestFailedResponse with category user naming the checkpoint", async () => {
    const failed = await submit("/api/v1/load_weights", {
      model_id: modelId,
      seq_id: ++seq,
      path: `tinker://${modelId}/weights/never-saved`,
      optimizer: false,
      type: "load_weights",
    });
    assert.equal(failed.category, "user");
    assert.match(failed.error, /never-saved/);
  });

  test("forward_backward inputs the model cannot take are a 400 naming the field, and the seq_id is not waited for", async () => {
    const res = await call("POST", "/api/v1/forward_backward", {
      model_id: modelId,
      seq_id: ++seq,
      forward_backward_input: {
        data: [datum([1, 2]), { ...datum([1, 2]), model_input: { chunks: [{ type: "encoded_text", tokens: [1, 999_999] }] } }],
        loss_fn: "cross_entropy",
      },
    });
    assert.equal(res.status, 400);
    assert.match(String(res.body.field), /data\[1\]\.model_input\.chunks\[0\]\.tokens/);
    const next = await submit("/api/v1/forward_backward", {
      model_id: modelId,
      seq_id: ++seq,
      forward_backward_input: { data: [datum([1, 2])], loss_fn: "cross_entropy" },
    });
    assert.ok(next.metrics !== undefined, JSON.stringify(next));
  });

  test("400 for unparseable JSON and 422 naming the field for schema violations", async () => {
    const bad = await call("POST", "/api/v1/optim_step", undefined, { raw: "{not json" });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.field, "body");
    assertSpec("POST", "/api/v1/optim_step", 400, bad.body);

    const cases: Array<[string, AnyJson, string]> = [
      ["/api/v1/optim_step", { model_id: modelId, seq_id: 99, adam_params: { learning_rate: "fast" } }, "body.adam_params.learning_rate"],
      ["/api/v1/optim_step", { model_id: modelId, adam_params: { learning_rate: 0.1 } }, "body.seq_id"],
      ["/api/v1/save_weights", { model_id: modelId, path: "x" }, "body.seq_id"],
      ["/api/v1/create_session", { tags: "a", user_metadata: {}, sdk_version: "x" }, "body.tags"],
      [
        "/api/v1/forward_backward",
        { model_id: modelId, seq_id: 98, forward_backward_input: { data: [{ model_input: { chunks: [] } }], loss_fn: "cross_entropy" } },
        "body.forward_backward_input.data[0].loss_fn_inputs",
      ],
      [
        "/api/v1/forward_backward",
        { model_id: modelId, seq_id: 97, forward_backward_input: { data: [], loss_fn: "mse" } },
        "body.forward_backward_input.loss_fn",
      ],
      ["/api/v1/retrieve_future", {}, "body.request_id"],
      ["/api/v1/create_model", { session_id: sessionId, model_seq_id: -1, base_model: "Qwen/Qwen3-8B" }, "body.model_seq_id"],
    ];
    for (const [path, body, field] of cases) {
      const r = await call("POST", path, body);
      assert.equal(r.status, 422, `${path} ${JSON.stringify(body)} → ${r.text}`);
      assert.equal(r.body.field, field);
      assert.ok(r.body.detail.startsWith(`${field}:`), r.body.detail);
      assertSpec("POST", path, 422, r.body);
    }
    const q = await call("GET", "/api/v1/training_runs?limit=0");
    assert.equal(q.status, 422);
    assert.equal(q.body.field, "query.limit");
    const q2 = await call("GET", "/api/v1/checkpoints?offset=abc");
    assert.equal(q2.body.field, "query.offset");
    const kind = await call("GET", `/api/v1/training_runs/${modelId}/checkpoints/other/x/archive`);
    assert.equal(kind.status, 422);
    assert.equal(kind.body.field, "path.checkpoint_kind");
    const model = await call("POST", "/api/v1/create_model", { session_id: sessionId, model_seq_id: 5, base_model: "acme/unknown" });
    assert.equal(model.status, 400);
    assert.equal(model.body.field, "body.base_model");
  });

  test("retrieve_future: unknown id is 404", async () => {
    const r = await call("POST", "/api/v1/retrieve_future", { request_id: "nope" });
    assert.equal(r.status, 404);
    assertSpec("POST", "/api/v1/retrieve_future", 404, r.body);
  });

  test("duplicate save is 409 naming the checkpoint and overwrite; overwrite: true succeeds", async () => {
    const dup = await call("POST", "/api/v1/save_weights", { model_id: modelId, path: "ckpt-1", seq_id: ++seq, overwrite: false });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.detail, `checkpoint weights/ckpt-1 already exists in run ${modelId}; pass overwrite: true to replace it`);
    assertSpec("POST", "/api/v1/save_weights", 409, dup.body);
    const over = await submit("/api/v1/save_weights", { model_id: modelId, path: "ckpt-1", seq_id: ++seq, overwrite: true });
    assert.equal(over.path, `tinker://${modelId}/weights/ckpt-1`);
  });

  test("load_weights: a sampler path is 400; an incompatible checkpoint fails the future naming both configs", async () => {
    const sampler = await call("POST", "/api/v1/load_weights", {
      model_id: modelId,
      seq_id: ++seq,
      path: `tinker://${modelId}/sampler_weights/samp-1`,
      optimizer: false,
    });
    assert.equal(sampler.status, 400);
    assert.match(sampler.body.detail, /is a sampler checkpoint; pass a training checkpoint \(tinker:\/\/<run>\/weights\/<name>\)/);
    assertSpec("POST", "/api/v1/load_weights", 400, sampler.body);

    const created = await submit("/api/v1/create_model", {
      session_id: sessionId,
      model_seq_id: 1,
      base_model: "Qwen/Qwen3-8B",
      lora_config: { rank: 8 },
    });
    const otherModel = created.model_id;
    const r = await call("POST", "/api/v1/load_weights", {
      model_id: otherModel,
      seq_id: 1,
      path: `tinker://${modelId}/weights/ckpt-1`,
      optimizer: true,
    });
    const failed = await result(call, r.body.request_id);
    assert.equal(failed.category, "user");
    assert.match(failed.error, /rank: 4/);
    assert.match(failed.error, /rank: 8/);
    const missing = await call("POST", "/api/v1/load_weights", {
      model_id: otherModel,
      seq_id: 2,
      path: `tinker://${modelId}/weights/nope`,
      optimizer: true,
    });
    const missingResult = await result(call, missing.body.request_id);
    assert.equal(missingResult.category, "user");
    assert.match(missingResult.error, /not found/);
  });

  test("listing runs, checkpoints and sessions; weights_info", async () => {
    const runs = await call("GET", "/api/v1/training_runs?limit=1&offset=0&access_scope=owned");
    assert.equal(runs.status, 200);
    assertSpec("GET", "/api/v1/training_runs", 200, runs.body);
    assert.deepEqual(runs.body.cursor, { offset: 0, limit: 1, total_count: 2 });
    assert.equal(runs.body.training_runs.length, 1);

    const run = await call("GET", `/api/v1/training_runs/${modelId}?access_scope=owned`);
    assertSpec("GET", RUNS, 200, run.body);
    assert.equal(run.body.last_checkpoint.checkpoint_id, "weights/ckpt-1");
    assert.equal(run.body.last_sampler_checkpoint.checkpoint_type, "sampler");
    assert.deepEqual(run.body.user_metadata, { purpose: "contract", n: "3" });
    const encoded = await call("GET", `/api/v1/training_runs/${encodeURIComponent(modelId)}`);
    assert.equal(encoded.status, 200);
    assert.equal(encoded.body.training_run_id, modelId);

    const cps = await call("GET", `/api/v1/training_runs/${modelId}/checkpoints`);
    assertSpec("GET", `${RUNS}/checkpoints`, 200, cps.body);
    assert.equal(cps.body.cursor, null);
    const ids = cps.body.checkpoints.map((c: AnyJson) => c.checkpoint_id).sort();
    assert.deepEqual(ids, ["sampler_weights/samp-1", "sampler_weights/sampler-0", "weights/ckpt-1"]);
    for (const c of cps.body.checkpoints) assert.ok(c.size_bytes > 0);

    const mine = await call("GET", "/api/v1/checkpoints?limit=2&offset=0");
    assertSpec("GET", "/api/v1/checkpoints", 200, mine.body);
    assert.deepEqual(mine.body.cursor, { offset: 0, limit: 2, total_count: 3 });
    const times = mine.body.checkpoints.map((c: AnyJson) => Date.parse(c.time));
    assert.ok(times[0] >= times[1], "newest first");

    const sessions = await call("GET", "/api/v1/sessions?limit=20&offset=0&access_scope=owned");
    assertSpec("GET", "/api/v1/sessions", 200, sessions.body);
    assert.deepEqual(sessions.body.sessions, [sessionId]);
    const session = await call("GET", `/api/v1/sessions/${sessionId}?access_scope=owned`);
    assertSpec("GET", "/api/v1/sessions/{session_id}", 200, session.body);
    assert.deepEqual(session.body.training_run_ids, [modelId, `${sessionId}:train:1`]);
    assert.equal(session.body.sampler_ids.length, 1);
    assert.equal((await other("GET", `/api/v1/sessions/${sessionId}`)).status, 404);

    const wi = await call("POST", "/api/v1/weights_info", { tinker_path: `tinker://${modelId}/weights/ckpt-1` });
    assertSpec("POST", "/api/v1/weights_info", 200, wi.body);
    assert.deepEqual(wi.body, {
      base_model: "Qwen/Qwen3-8B",
      is_lora: true,
      lora_rank: 4,
      train_unembed: true,
      train_mlp: true,
      train_attn: true,
    });
    const badPath = await call("POST", "/api/v1/weights_info", { tinker_path: "s3://x" });
    assert.equal(badPath.status, 400);
    assert.equal(badPath.body.field, "body.tinker_path");
    const missing = await call("POST", "/api/v1/weights_info", { tinker_path: `tinker://${modelId}/weights/none` });
    assert.equal(missing.status, 404);
  });

  test("other users: private is 404, public is readable but only the owner may change it", async () => {
    const path = `tinker://${modelId}/weights/ckpt-1`;
    const ck = `/api/v1/training_runs/${modelId}/checkpoints/weights/ckpt-1`;
    assert.equal((await other("POST", "/api/v1/weights_info", { tinker_path: path })).status, 404);
    assert.equal((await other("GET", `${ck}/archive`)).status, 404);
    assert.equal((await other("GET", `/api/v1/training_runs/${modelId}/checkpoints`)).status, 404);
    assert.equal((await other("GET", `/api/v1/training_runs/${modelId}?access_scope=accessible`)).status, 404);
    assert.equal((await other("DELETE", ck)).status, 404);

    const pub = await call("POST", `${ck}/publish`, undefined, { headers: { "content-type": "application/json" } });
    assert.equal(pub.status, 204);
    const again = await call("POST", `${ck}/publish`);
    assert.equal(again.status, 409);
    assertSpec("POST", `${CKPT}/publish`, 409, again.body);

    const wi = await other("POST", "/api/v1/weights_info", { tinker_path: path });
    assert.equal(wi.status, 200);
    assert.equal((await other("GET", `${ck}/archive`)).status, 302);
    assert.equal((await other("GET", `/api/v1/training_runs/${modelId}?access_scope=owned`)).status, 404);
    const acc = await other("GET", `/api/v1/training_runs/${modelId}?access_scope=accessible`);
    assert.equal(acc.status, 200);
    assertSpec("GET", RUNS, 200, acc.body);
    assert.equal(acc.body.last_sampler_checkpoint, null, "private sampler checkpoints stay hidden");
    const accList = await other("GET", "/api/v1/training_runs?access_scope=accessible");
    assert.deepEqual(
      accList.body.training_runs.map((r: AnyJson) => r.training_run_id),
      [modelId],
    );
    assert.equal((await other("GET", "/api/v1/training_runs")).body.training_runs.length, 0);
    for (const [method, suffix] of [
      ["DELETE", ""],
      ["POST", "/publish"],
      ["DELETE", "/publish"],
    ] as const) {
      assert.equal((await other(method, `${ck}${suffix}`)).status, 403);
    }
    assert.equal((await other("PUT", `${ck}/ttl`, { ttl_seconds: 7200 })).status, 403);

    // Loading a public checkpoint into one's own model is allowed.
    const session = await other("POST", "/api/v1/create_session", { tags: [], user_metadata: {}, sdk_version: "x" });
    const create = await other("POST", "/api/v1/create_model", {
      session_id: session.body.session_id,
      model_seq_id: 0,
      base_model: "Qwen/Qwen3-8B",
      lora_config: { rank: 4, seed: 1 },
    });
    assert.equal((await result(other, create.body.request_id)).type, "create_model");
    const load = await other("POST", "/api/v1/load_weights", { model_id: create.body.model_id, seq_id: 1, path, optimizer: true });
    const loaded = await result(other, load.body.request_id);
    assert.ok(!("error" in loaded), JSON.stringify(loaded));
    // …but not into someone else's model, nor polling someone else's future.
    assert.equal(
      (await other("POST", "/api/v1/optim_step", { model_id: modelId, seq_id: 500, adam_params: { learning_rate: 0.1 } })).status,
      404,
    );
    assert.equal((await other("POST", "/api/v1/retrieve_future", { request_id: create.body.request_id })).status, 200);
    assert.equal((await call("POST", "/api/v1/retrieve_future", { request_id: create.body.request_id })).status, 404);

    const unpub = await call("DELETE", `${ck}/publish`);
    assert.equal(unpub.status, 204);
    assert.equal((await call("DELETE", `${ck}/publish`)).status, 409);
    assert.equal((await other("POST", "/api/v1/weights_info", { tinker_path: path })).status, 404);
  });

  test("TTL: validation, expires_at, and expiry makes the checkpoint vanish everywhere", async () => {
    const ck = `/api/v1/training_runs/${modelId}/checkpoints/weights/ckpt-1`;
    for (const ttl of [0, -5]) {
      const r = await call("PUT", `${ck}/ttl`, { ttl_seconds: ttl });
      assert.equal(r.status, 400);
      assert.equal(r.body.field, "body.ttl_seconds");
    }
    const short = await call("PUT", `${ck}/ttl`, { ttl_seconds: 60 });
    assert.equal(short.status, 400, "the minimum TTL is 3600 s by default");
    assert.equal((await call("PUT", `${ck}/ttl`, { ttl_seconds: "x" })).status, 422);
    assert.equal((await call("PUT", `${ck}/ttl`, { ttl_seconds: 3600 })).status, 204);
    let listed = (await call("GET", `/api/v1/training_runs/${modelId}/checkpoints`)).body.checkpoints.find(
      (c: AnyJson) => c.checkpoint_id === "weights/ckpt-1",
    );
    const expires = Date.parse(listed.expires_at);
    assert.ok(Math.abs(expires - (Date.now() + clockOffset + 3600_000)) < 5000);
    assert.equal((await call("PUT", `${ck}/ttl`, { ttl_seconds: null })).status, 204);
    listed = (await call("GET", `/api/v1/training_runs/${modelId}/checkpoints`)).body.checkpoints.find(
      (c: AnyJson) => c.checkpoint_id === "weights/ckpt-1",
    );
    assert.equal(listed.expires_at, null);

    // A save with a TTL, then the clock moves past it.
    const saved = await submit("/api/v1/save_weights", { model_id: modelId, path: "short-lived", seq_id: ++seq, ttl_seconds: 3600 });
    assert.equal(saved.path, `tinker://${modelId}/weights/short-lived`);
    const sl = `/api/v1/training_runs/${modelId}/checkpoints/weights/short-lived`;
    assert.equal((await call("GET", `${sl}/archive`)).status, 302);
    clockOffset += 3601_000;
    const ids = (await call("GET", `/api/v1/training_runs/${modelId}/checkpoints`)).body.checkpoints.map((c: AnyJson) => c.checkpoint_id);
    assert.ok(!ids.includes("weights/short-lived"));
    assert.ok(ids.includes("weights/ckpt-1"));
    assert.equal((await call("POST", "/api/v1/weights_info", { tinker_path: `tinker://${modelId}/weights/short-lived` })).status, 404);
    assert.equal((await call("GET", `${sl}/archive`)).status, 404);
    assert.equal((await call("DELETE", sl)).status, 404);
    assert.ok(!(await call("GET", "/api/v1/checkpoints")).body.checkpoints.some((c: AnyJson) => c.checkpoint_id === "weights/short-lived"));
    // It can be saved again under the same name (no 409 from an expired checkpoint).
    const again = await submit("/api/v1/save_weights", { model_id: modelId, path: "short-lived", seq_id: ++seq });
    assert.ok(!("error" in again));
  });

  test("archive URL (302) and delete (204, then 404)", async () => {
    const ck = `/api/v1/training_runs/${modelId}/checkpoints/sampler_weights/samp-1`;
    const archive = await call("GET", `${ck}/archive`, undefined, { headers: { accept: "application/json" } });
    assert.equal(archive.status, 302);
    assert.ok(archive.headers.get("location")!.startsWith(`${server.baseUrl}/local/archives/`));
    assert.ok(!Number.isNaN(Date.parse(archive.headers.get("expires")!)));
    const del = await call("DELETE", ck);
    assert.equal(del.status, 204);
    assert.equal(del.text, "");
    const del2 = await call("DELETE", ck);
    assert.equal(del2.status, 404);
    assertSpec("DELETE", CKPT, 404, del2.body);
  });

  test("load_weights with session_id creates the model from a checkpoint (its seq 0)", async () => {
    const before = await submit("/api/v1/optim_step", { model_id: modelId, seq_id: ++seq, adam_params: { learning_rate: 0.01 } });
    await submit("/api/v1/save_weights", { model_id: modelId, seq_id: ++seq, path: "for-create" });
    const path = `tinker://${modelId}/weights/for-create`;
    const both = await call("POST", "/api/v1/load_weights", {
      model_id: modelId,
      seq_id: 1,
      session_id: sessionId,
      model_seq_id: 9,
      path,
      optimizer: true,
    });
    assert.equal(both.status, 422);
    const loaded = await submit("/api/v1/load_weights", {
      session_id: sessionId,
      model_seq_id: 9,
      path,
      optimizer: true,
      type: "load_weights",
    });
    assert.deepEqual(loaded, { path, model_id: `${sessionId}:train:9`, type: "load_weights" });
    const info = await call("POST", "/api/v1/get_info", { model_id: loaded.model_id });
    assert.equal(info.body.lora_rank, 4, "the LoRA config comes from the checkpoint");
    const step = await submit("/api/v1/optim_step", { model_id: loaded.model_id, seq_id: 1, adam_params: { learning_rate: 0.01 } });
    assert.equal(step.metrics.step, before.metrics.step + 1, "the optimizer state was restored");
  });

  test("a long poll abandoned by the client does not disturb the server", async () => {
    const slow = await startLocalServer({ futureDelayMs: 300, longPollMs: 5000 });
    try {
      const c = clientFor(slow, slow.apiKey);
      const s = await c("POST", "/api/v1/create_session", { tags: [], user_metadata: {}, sdk_version: "x" });
      const m = await c("POST", "/api/v1/create_model", {
        session_id: s.body.session_id,
        model_seq_id: 0,
        base_model: "Qwen/Qwen3-8B",
        lora_config: { rank: 2 },
      });
      const abort = new AbortController();
      const gone = fetch(`${slow.baseUrl}/api/v1/retrieve_future`, {
        method: "POST",
        headers: { "x-api-key": slow.apiKey, "content-type": "application/json" },
        body: JSON.stringify({ request_id: m.body.request_id }),
        signal: abort.signal,
      }).catch(() => "aborted");
      await new Promise((r) => setTimeout(r, 50));
      abort.abort();
      assert.equal(await gone, "aborted");
      assert.equal((await result(c, m.body.request_id)).type, "create_model");
    } finally {
      await slow.close();
    }
  });

  test("unload_model resolves to UnloadModelResponse; the model then answers 404", async () => {
    const unloaded = await submit("/api/v1/unload_model", { model_id: modelId, type: "unload_model" });
    assert.deepEqual(unloaded, { model_id: modelId, type: "unload_model" });
    const after = await call("POST", "/api/v1/optim_step", { model_id: modelId, seq_id: ++seq, adam_params: { learning_rate: 0.1 } });
    assert.equal(after.status, 404);
    assert.match(after.body.detail, /not loaded/);
    // Its run and checkpoints remain.
    assert.equal((await call("GET", `/api/v1/training_runs/${modelId}`)).status, 200);
  });
});

describe("futures: long poll, try_again, expiry", () => {
  test("pending futures answer try_again with the configured queue state; results expire with 410", async () => {
    const server = await startLocalServer({ futureDelayMs: 400, longPollMs: 50, queueState: "paused_capacity", futureRetentionMs: 150 });
    try {
      const call = clientFor(server, server.apiKey);
      const session = await call("POST", "/api/v1/create_session", { tags: [], user_metadata: {}, sdk_version: "x" });
      const create = await call("POST", "/api/v1/create_model", {
        session_id: session.body.session_id,
        model_seq_id: 0,
        base_model: "meta-llama/Llama-3.2-1B",
        lora_config: { rank: 2 },
      });
      const pending = await call("POST", "/api/v1/retrieve_future", { request_id: create.body.request_id, allow_metadata_only: true });
      assert.equal(pending.status, 200);
      assertSpec("POST", "/api/v1/retrieve_future", 200, pending.body);
      assert.equal(pending.body.type, "try_again");
      assert.equal(pending.body.request_id, create.body.request_id);
      assert.equal(pending.body.queue_state, "paused_capacity");
      server.setQueueState("active");

      // A long poll is answered as soon as the result exists.
      const slow = await startLocalServer({ futureDelayMs: 200, longPollMs: 5000 });
      try {
        const c2 = clientFor(slow, slow.apiKey);
        const s2 = await c2("POST", "/api/v1/create_session", { tags: [], user_metadata: {}, sdk_version: "x" });
        const m2 = await c2("POST", "/api/v1/create_model", {
          session_id: s2.body.session_id,
          model_seq_id: 0,
          base_model: "Qwen/Qwen3-8B",
          lora_config: { rank: 2 },
        });
        const t0 = performance.now();
        const done = await c2("POST", "/api/v1/retrieve_future", { request_id: m2.body.request_id });
        const elapsed = performance.now() - t0;
        assert.equal(done.body.type, "create_model");
        assert.ok(elapsed >= 100 && elapsed < 1500, `answered after ${elapsed} ms`);
      } finally {
        await slow.close();
      }

      const result = await (async () => {
        for (;;) {
          const r = await call("POST", "/api/v1/retrieve_future", { request_id: create.body.request_id });
          if (r.body.type !== "try_again") return r.body;
        }
      })();
      assert.equal(result.type, "create_model");
      await new Promise((r) => setTimeout(r, 250));
      const expired = await call("POST", "/api/v1/retrieve_future", { request_id: create.body.request_id });
      assert.equal(expired.status, 410);
      assert.deepEqual(expired.body, { detail: "promise expired; resubmit the request" });
      assertSpec("POST", "/api/v1/retrieve_future", 410, expired.body);
    } finally {
      await server.close();
    }
  });

  test("close() ends held long polls promptly", async () => {
    const server = await startLocalServer({ futureDelayMs: 10_000, longPollMs: 20_000 });
    const call = clientFor(server, server.apiKey);
    const session = await call("POST", "/api/v1/create_session", { tags: [], user_metadata: {}, sdk_version: "x" });
    const create = await call("POST", "/api/v1/create_model", {
      session_id: session.body.session_id,
      model_seq_id: 0,
      base_model: "Qwen/Qwen3-8B",
      lora_config: { rank: 2 },
    });
    const poll = call("POST", "/api/v1/retrieve_future", { request_id: create.body.request_id }).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 100));
    const t0 = performance.now();
    await server.close();
    assert.ok(performance.now() - t0 < 2000);
    const answered = await poll;
    if (!(answered instanceof Error)) assert.equal((answered as Res).body.type, "try_again");
  });
});
