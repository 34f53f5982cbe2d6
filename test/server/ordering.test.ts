// Per-model ordering by seq_id on the local server: early arrivals wait for their predecessors,
// a repeated seq_id returns the original future and runs once, and a burned seq_id is skipped after
// seqGapTimeoutMs instead of stalling the model.

import assert from "node:assert/strict";
import { test } from "node:test";
import { startLocalServer, type LocalServer, type LocalServerOptions } from "../../src/server/index.js";

// biome-ignore lint/suspicious/noExplicitAny: untyped JSON from the wire, checked field by field
type AnyJson = any;

async function post(server: LocalServer, path: string, body: unknown): Promise<{ status: number; body: AnyJson }> {
  const r = await fetch(`${server.baseUrl}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": server.apiKey },
    body: JSON.stringify(body),
  });
  return { status: r.status, body: await r.json() };
}

/** Polls once (long-polling up to the server's longPollMs). */
async function pollOnce(server: LocalServer, requestId: string): Promise<AnyJson> {
  const r = await post(server, "/api/v1/retrieve_future", { request_id: requestId });
  assert.equal(r.status, 200);
  return r.body;
}

async function result(server: LocalServer, requestId: string): Promise<AnyJson> {
  for (;;) {
    const body = await pollOnce(server, requestId);
    if (body.type !== "try_again") return body;
  }
}

async function withModel(options: LocalServerOptions, fn: (server: LocalServer, modelId: string) => Promise<void>): Promise<void> {
  const server = await startLocalServer(options);
  try {
    const session = await post(server, "/api/v1/create_session", { tags: [], user_metadata: {}, sdk_version: "test" });
    const create = await post(server, "/api/v1/create_model", {
      session_id: session.body.session_id,
      model_seq_id: 0,
      base_model: "Qwen/Qwen3-8B",
      lora_config: { rank: 2 },
    });
    assert.equal(create.status, 200);
    await fn(server, create.body.model_id);
  } finally {
    await server.close();
  }
}

const adam = { learning_rate: 0.01 };
const optim = (modelId: string, seq: number) => ({ model_id: modelId, seq_id: seq, adam_params: adam, type: "optim_step" });

test("ops arriving out of order (3, 2, 1) execute in seq order; the create is seq 0", async () => {
  await withModel({ longPollMs: 100, futureDelayMs: 20 }, async (server, modelId) => {
    // Sent before the create has even executed.
    const r3 = await post(server, "/api/v1/optim_step", optim(modelId, 3));
    const r2 = await post(server, "/api/v1/optim_step", optim(modelId, 2));
    assert.equal(r3.status, 200);
    assert.equal(r2.status, 200);
    // 3 waits for 1, which has not arrived.
    assert.equal((await pollOnce(server, r3.body.request_id)).type, "try_again");
    const r1 = await post(server, "/api/v1/optim_step", optim(modelId, 1));
    const steps = await Promise.all([r1, r2, r3].map(async (r) => (await result(server, r.body.request_id)).metrics.step));
    assert.deepEqual(steps, [1, 2, 3]);
  });
});

test("a repeated seq_id returns the original request_id and executes once (pending or done)", async () => {
  await withModel({ longPollMs: 100 }, async (server, modelId) => {
    const first = await post(server, "/api/v1/optim_step", optim(modelId, 1));
    assert.equal((await result(server, first.body.request_id)).metrics.step, 1);
    const retry = await post(server, "/api/v1/optim_step", optim(modelId, 1));
    assert.equal(retry.status, 200);
    assert.equal(retry.body.request_id, first.body.request_id);

    // Duplicate while still waiting for a predecessor (seq 2 missing).
    const three = await post(server, "/api/v1/optim_step", optim(modelId, 3));
    const threeAgain = await post(server, "/api/v1/optim_step", optim(modelId, 3));
    assert.equal(threeAgain.body.request_id, three.body.request_id);
    // A duplicate is matched on seq_id alone, even with another body.
    const threeOther = await post(server, "/api/v1/save_weights", { model_id: modelId, seq_id: 3, path: "never" });
    assert.equal(threeOther.body.request_id, three.body.request_id);
    const two = await post(server, "/api/v1/optim_step", optim(modelId, 2));
    assert.equal((await result(server, two.body.request_id)).metrics.step, 2);
    assert.equal((await result(server, three.body.request_id)).metrics.step, 3);
    const four = await post(server, "/api/v1/optim_step", optim(modelId, 4));
    assert.equal((await result(server, four.body.request_id)).metrics.step, 4, "each seq_id executed exactly once");
    const listed = await fetch(`${server.baseUrl}/api/v1/training_runs/${modelId}/checkpoints`, {
      headers: { "x-api-key": server.apiKey },
    });
    assert.deepEqual(((await listed.json()) as AnyJson).checkpoints, [], "the duplicate save never ran");
  });
});

test("a seq_id that never arrives is skipped after seqGapTimeoutMs; arriving later is 409", async () => {
  await withModel({ longPollMs: 2000, seqGapTimeoutMs: 200 }, async (server, modelId) => {
    const t0 = performance.now();
    const two = await post(server, "/api/v1/optim_step", optim(modelId, 2));
    const res = await result(server, two.body.request_id);
    const waited = performance.now() - t0;
    assert.equal(res.metrics.step, 1, "seq 1 never ran, so seq 2 is the first step");
    assert.ok(waited >= 180, `waited ${waited} ms for the gap`);
    assert.ok(waited < 1500, `waited ${waited} ms for the gap`);
    const late = await post(server, "/api/v1/optim_step", optim(modelId, 1));
    assert.equal(late.status, 409);
    assert.match(late.body.detail, /seq_id 1 .* can no longer run/);
    assert.equal(late.body.field, "body.seq_id");
  });
});

test("a rejected submit (409 save, 422 body) uses up its seq_id without stalling later ops", async () => {
  // The default gap timeout is 30 s: if a rejected seq_id stalled the model this test would time out.
  await withModel({ longPollMs: 2000 }, async (server, modelId) => {
    const save = await post(server, "/api/v1/save_weights", { model_id: modelId, seq_id: 1, path: "a" });
    assert.ok(!("error" in (await result(server, save.body.request_id))));
    const dup = await post(server, "/api/v1/save_weights", { model_id: modelId, seq_id: 2, path: "a" });
    assert.equal(dup.status, 409);
    const invalid = await post(server, "/api/v1/optim_step", { model_id: modelId, seq_id: 3, adam_params: { learning_rate: "x" } });
    assert.equal(invalid.status, 422);
    const t0 = performance.now();
    const next = await post(server, "/api/v1/optim_step", optim(modelId, 4));
    assert.equal((await result(server, next.body.request_id)).metrics.step, 1);
    assert.ok(performance.now() - t0 < 1000);
    // Repeating a rejected seq_id gets the same answer.
    const dupAgain = await post(server, "/api/v1/save_weights", { model_id: modelId, seq_id: 2, path: "a" });
    assert.equal(dupAgain.status, 409);
    assert.equal(dupAgain.body.detail, dup.body.detail);
  });
});

test("missing seq_id is 422; a repeated create_model returns the original future", async () => {
  const server = await startLocalServer({ futureDelayMs: 30 });
  try {
    const session = await post(server, "/api/v1/create_session", { tags: [], user_metadata: {}, sdk_version: "test" });
    const body = { session_id: session.body.session_id, model_seq_id: 0, base_model: "Qwen/Qwen3-8B", lora_config: { rank: 2 } };
    const a = await post(server, "/api/v1/create_model", body);
    const b = await post(server, "/api/v1/create_model", body);
    assert.equal(b.body.request_id, a.body.request_id);
    assert.equal((await result(server, a.body.request_id)).model_id, a.body.model_id);
    for (const path of ["/api/v1/optim_step", "/api/v1/forward_backward", "/api/v1/save_weights", "/api/v1/save_weights_for_sampler"]) {
      const extra =
        path === "/api/v1/optim_step"
          ? { adam_params: adam }
          : path === "/api/v1/forward_backward"
            ? { forward_backward_input: { data: [], loss_fn: "cross_entropy" } }
            : { path: "x" };
      const r = await post(server, path, { model_id: a.body.model_id, ...extra });
      assert.equal(r.status, 422, path);
      assert.equal(r.body.field, "body.seq_id");
    }
    const load = await post(server, "/api/v1/load_weights", {
      model_id: a.body.model_id,
      path: `tinker://${a.body.model_id}/weights/x`,
      optimizer: false,
    });
    assert.equal(load.status, 422);
    assert.equal(load.body.field, "body.seq_id");
  } finally {
    await server.close();
  }
});

test("operations are serialized per model, but different models run independently", async () => {
  await withModel({ futureDelayMs: 150, longPollMs: 5000 }, async (server, modelId) => {
    const session = await post(server, "/api/v1/create_session", { tags: [], user_metadata: {}, sdk_version: "test" });
    const other = await post(server, "/api/v1/create_model", {
      session_id: session.body.session_id,
      model_seq_id: 0,
      base_model: "Qwen/Qwen3-8B",
      lora_config: { rank: 2 },
    });
    const t0 = performance.now();
    const mine = await Promise.all([1, 2].map((s) => post(server, "/api/v1/optim_step", optim(modelId, s))));
    const theirs = await post(server, "/api/v1/optim_step", optim(other.body.model_id, 1));
    await result(server, theirs.body.request_id);
    const tTheirs = performance.now() - t0;
    await result(server, mine[1]!.body.request_id);
    const tMine = performance.now() - t0;
    // mine: create + 2 steps (3 × 150 ms in sequence); theirs: create + 1 step, in parallel with mine.
    assert.ok(tMine >= 400, `model ops ran in sequence (${tMine} ms)`);
    assert.ok(tTheirs < tMine, `the other model did not wait for this one (${tTheirs} vs ${tMine} ms)`);
  });
});
