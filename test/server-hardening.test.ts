// Local-server hardening (issue 12): archive validators and version-bound URLs, X-Idempotency-Key replay,
// one checkpoint-name rule, hostile input (deep JSON, seq_id range, content types, idle connections, the
// admin route), and load_weights of another user's checkpoint.

import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { startLocalServer, type LocalServer, type LocalServerOptions } from "../src/server/index.js";
import { type AnyJson, type Api, rawApi } from "./helpers/raw-api.js";

const api = rawApi;

async function settle(call: Api, requestId: string): Promise<AnyJson> {
  for (;;) {
    const p = await call("POST", "/api/v1/retrieve_future", { request_id: requestId });
    assert.equal(p.status, 200, JSON.stringify(p.body));
    if (p.body.type === "try_again") continue;
    return p.body;
  }
}

async function run(call: Api, path: string, body: AnyJson): Promise<AnyJson> {
  const r = await call("POST", path, body);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const out = await settle(call, r.body.request_id);
  assert.ok(!("error" in out), JSON.stringify(out));
  return out;
}

const DATUM = {
  model_input: { chunks: [{ type: "encoded_text", tokens: [1, 2, 3, 4] }] },
  loss_fn_inputs: { target_tokens: { data: [2, 3, 4, 5], dtype: "int64" }, weights: { data: [1, 1, 1, 1], dtype: "float32" } },
};

/** A session and a model; `seq` hands out the model's next seq ids. */
async function newModel(call: Api): Promise<{ session: string; runId: string; seq: () => number }> {
  const session = (await call("POST", "/api/v1/create_session", { tags: [], user_metadata: {}, sdk_version: "t" })).body.session_id;
  const runId = (
    await run(call, "/api/v1/create_model", { session_id: session, model_seq_id: 0, base_model: "Qwen/Qwen3-8B", lora_config: { rank: 8 } })
  ).model_id;
  let next = 1;
  return { session, runId, seq: () => next++ };
}

async function trainStep(call: Api, runId: string, seq: () => number): Promise<void> {
  await run(call, "/api/v1/forward_backward", {
    model_id: runId,
    seq_id: seq(),
    forward_backward_input: { data: [DATUM], loss_fn: "cross_entropy" },
  });
  await run(call, "/api/v1/optim_step", { model_id: runId, seq_id: seq(), adam_params: { learning_rate: 0.05 } });
}

async function withServer(options: LocalServerOptions, fn: (server: LocalServer) => Promise<void>): Promise<void> {
  const server = await startLocalServer(options);
  try {
    await fn(server);
  } finally {
    await server.close();
  }
}

describe("archive downloads: strong validators, If-Range, URLs bound to the checkpoint's version", () => {
  test("overwriting a checkpoint between two range requests never yields a mix of both versions", async () => {
    await withServer({}, async (server) => {
      const call = api(server);
      const { runId, seq } = await newModel(call);
      await trainStep(call, runId, seq);
      await run(call, "/api/v1/save_weights", { model_id: runId, seq_id: seq(), path: "v" });
      const archivePath = `/api/v1/training_runs/${runId}/checkpoints/weights/v/archive`;
      const oldUrl = (await call("GET", archivePath)).headers.get("location")!;

      const first = await fetch(oldUrl, { headers: { range: "bytes=0-99" } });
      assert.equal(first.status, 206);
      const etag = first.headers.get("etag");
      assert.match(etag ?? "", /^"[^"]+"$/, "a strong entity tag (no W/ prefix)");
      const lastModified = first.headers.get("last-modified");
      assert.ok(lastModified !== null && !Number.isNaN(Date.parse(lastModified)), `Last-Modified: ${lastModified}`);
      const oldFull = Buffer.from(await (await fetch(oldUrl)).arrayBuffer());
      const resumed = await fetch(oldUrl, { headers: { range: "bytes=100-", "if-range": etag! } });
      assert.equal(resumed.status, 206, "a matching If-Range resumes");
      assert.ok(Buffer.from(await resumed.arrayBuffer()).equals(oldFull.subarray(100)));

      // Overwrite with different weights.
      await trainStep(call, runId, seq);
      await run(call, "/api/v1/save_weights", { model_id: runId, seq_id: seq(), path: "v", overwrite: true });

      const stale = await fetch(oldUrl, { headers: { range: "bytes=100-", "if-range": etag! } });
      assert.equal(stale.status, 410, "a URL signed for the old version is gone");
      assert.match(String(((await stale.json()) as AnyJson).detail), /overwritten.*request a new (download )?URL/i);

      const newUrl = (await call("GET", archivePath)).headers.get("location")!;
      const newFull = Buffer.from(await (await fetch(newUrl)).arrayBuffer());
      assert.ok(!newFull.equals(oldFull), "the new version has other bytes");
      const mixed = await fetch(newUrl, { headers: { range: "bytes=100-", "if-range": etag! } });
      assert.equal(mixed.status, 200, "If-Range with the old validator gets the whole new archive, not a range of it");
      const newEtag = mixed.headers.get("etag");
      assert.notEqual(newEtag, etag);
      assert.equal(mixed.headers.get("content-range"), null);
      assert.ok(Buffer.from(await mixed.arrayBuffer()).equals(newFull));

      const ok = await fetch(newUrl, { headers: { range: "bytes=100-", "if-range": newEtag! } });
      assert.equal(ok.status, 206);
      assert.ok(Buffer.from(await ok.arrayBuffer()).equals(newFull.subarray(100)));
      const weak = await fetch(newUrl, { headers: { range: "bytes=100-", "if-range": `W/${newEtag}` } });
      assert.equal(weak.status, 200, "a weak validator never matches If-Range");
      await weak.arrayBuffer();
      const date = await fetch(newUrl, { headers: { range: "bytes=100-", "if-range": lastModified! } });
      assert.equal(date.status, 200, "a date If-Range is not trusted (two saves can share a second): whole body");
      await date.arrayBuffer();
    });
  });

  test("the ETag is derived from the archive's bytes: stable across restarts and URLs, different after a delete and re-save", async () => {
    await withServer({}, async (server) => {
      const call = api(server);
      const { runId, seq } = await newModel(call);
      await run(call, "/api/v1/save_weights", { model_id: runId, seq_id: seq(), path: "e" });
      const path = `/api/v1/training_runs/${runId}/checkpoints/weights/e/archive`;
      const a = await fetch((await call("GET", path)).headers.get("location")!, { method: "HEAD" });
      const b = await fetch((await call("GET", path)).headers.get("location")!, { method: "HEAD" });
      assert.equal(a.headers.get("etag"), b.headers.get("etag"));
      assert.equal((await call("DELETE", `/api/v1/training_runs/${runId}/checkpoints/weights/e`)).status, 204);
      await trainStep(call, runId, seq);
      await run(call, "/api/v1/save_weights", { model_id: runId, seq_id: seq(), path: "e" });
      const c = await fetch((await call("GET", path)).headers.get("location")!, { method: "HEAD" });
      assert.notEqual(c.headers.get("etag"), a.headers.get("etag"));
    });
  });
});

describe("X-Idempotency-Key: a repeated mutating request replays the first answer", () => {
  let server: LocalServer;
  let call: Api;
  let clockOffset = 0;
  before(async () => {
    server = await startLocalServer({ clock: () => Date.now() + clockOffset, extraApiKeys: ["tml-other-user"], faultInjection: true });
    call = api(server);
  });
  after(async () => {
    await server.close();
  });

  test("create_session with a repeated key returns the same session and creates no second one", async () => {
    const body = { tags: [], user_metadata: {}, sdk_version: "t" };
    const key = { "x-idempotency-key": "idem-create-1" };
    const a = await call("POST", "/api/v1/create_session", body, key);
    const b = await call("POST", "/api/v1/create_session", body, key);
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    assert.equal(b.body.session_id, a.body.session_id);
    assert.equal(b.headers.get("idempotent-replayed"), "true");
    assert.equal(a.headers.get("idempotent-replayed"), null);
    const c = await call("POST", "/api/v1/create_session", body, { "x-idempotency-key": "idem-create-2" });
    assert.notEqual(c.body.session_id, a.body.session_id);
    const sessions = (await call("GET", "/api/v1/sessions?limit=100")).body.sessions as string[];
    assert.equal(sessions.filter((s) => s === a.body.session_id).length, 1);
    assert.equal(sessions.length, 2);
  });

  test("publish, unpublish and delete replay their first answer instead of 409/404", async () => {
    const { runId, seq } = await newModel(call);
    await run(call, "/api/v1/save_weights", { model_id: runId, seq_id: seq(), path: "p" });
    const cp = `/api/v1/training_runs/${runId}/checkpoints/weights/p`;
    for (const [method, path, key] of [
      ["POST", `${cp}/publish`, "k-pub"],
      ["DELETE", `${cp}/publish`, "k-unpub"],
      ["DELETE", cp, "k-del"],
    ] as const) {
      const first = await call(method, path, undefined, { "x-idempotency-key": key });
      assert.equal(first.status, 204, `${method} ${path}: ${JSON.stringify(first.body)}`);
      const again = await call(method, path, undefined, { "x-idempotency-key": key });
      assert.equal(again.status, 204, `${method} ${path} repeated: ${JSON.stringify(again.body)}`);
      assert.equal(again.headers.get("idempotent-replayed"), "true");
      const fresh = await call(method, path, undefined, { "x-idempotency-key": `${key}-new` });
      assert.equal(fresh.status, method === "DELETE" && path === cp ? 404 : 409, "a new key executes again");
    }
  });

  test("concurrent repeats wait for the first and get its answer", async () => {
    const body = { tags: [], user_metadata: {}, sdk_version: "t" };
    const key = { "x-idempotency-key": "idem-concurrent" };
    const answers = await Promise.all(Array.from({ length: 6 }, () => call("POST", "/api/v1/create_session", body, key)));
    assert.deepEqual(new Set(answers.map((a) => a.body.session_id)).size, 1);
    assert.equal(answers.filter((a) => a.headers.get("idempotent-replayed") === null).length, 1, "exactly one executed");
  });

  test("the replay is scoped to owner, method and path; a different body under the same key is refused", async () => {
    const body = { tags: [], user_metadata: {}, sdk_version: "t" };
    const key = { "x-idempotency-key": "idem-scope" };
    const mine = await call("POST", "/api/v1/create_session", body, key);
    const theirs = await api(server, "tml-other-user")("POST", "/api/v1/create_session", body, key);
    assert.equal(theirs.status, 200);
    assert.notEqual(theirs.body.session_id, mine.body.session_id);
    assert.equal(theirs.headers.get("idempotent-replayed"), null);
    const other = await call("POST", "/api/v1/create_session", { ...body, tags: ["x"] }, key);
    assert.equal(other.status, 422);
    assert.match(other.body.detail, /X-Idempotency-Key/);
  });

  test("a transient failure (injected 503) is not remembered: the retry executes", async () => {
    server.setFaults([{ path: "/api/v1/create_session", times: 1, status: 503 }]);
    const body = { tags: [], user_metadata: {}, sdk_version: "t" };
    const key = { "x-idempotency-key": "idem-503" };
    assert.equal((await call("POST", "/api/v1/create_session", body, key)).status, 503);
    const retry = await call("POST", "/api/v1/create_session", body, key);
    assert.equal(retry.status, 200);
    assert.equal(retry.headers.get("idempotent-replayed"), null);
    assert.match(retry.body.session_id, /^sess-/);
  });

  test("a response lost after the work was done (connection cut) is replayed to the retry", async () => {
    server.setFaults([{ path: "/api/v1/create_session", times: 1, cutAfterBytes: 0 }]);
    const body = { tags: [], user_metadata: {}, sdk_version: "t" };
    const key = { "x-idempotency-key": "idem-cut" };
    await assert.rejects(call("POST", "/api/v1/create_session", body, key));
    const before = ((await call("GET", "/api/v1/sessions?limit=100")).body.sessions as string[]).length;
    const retry = await call("POST", "/api/v1/create_session", body, key);
    assert.equal(retry.status, 200);
    assert.equal(retry.headers.get("idempotent-replayed"), "true");
    assert.equal(((await call("GET", "/api/v1/sessions?limit=100")).body.sessions as string[]).length, before);
  });

  test("keys are remembered for the documented window (15 min), then forgotten", async () => {
    const body = { tags: [], user_metadata: {}, sdk_version: "t" };
    const key = { "x-idempotency-key": "idem-window" };
    const a = await call("POST", "/api/v1/create_session", body, key);
    clockOffset += 14 * 60_000;
    assert.equal((await call("POST", "/api/v1/create_session", body, key)).body.session_id, a.body.session_id);
    clockOffset += 2 * 60_000;
    const late = await call("POST", "/api/v1/create_session", body, key);
    assert.notEqual(late.body.session_id, a.body.session_id);
  });

  test("training ops keep their (model_id, seq_id) dedup with or without a key", async () => {
    const { runId, seq } = await newModel(call);
    const s = seq();
    const body = { model_id: runId, seq_id: s, adam_params: { learning_rate: 0.01 } };
    const a = await call("POST", "/api/v1/optim_step", body, { "x-idempotency-key": "op-1" });
    const b = await call("POST", "/api/v1/optim_step", body, { "x-idempotency-key": "op-2" });
    const c = await call("POST", "/api/v1/optim_step", body, { "x-idempotency-key": "op-1" });
    assert.equal(b.body.request_id, a.body.request_id);
    assert.equal(c.body.request_id, a.body.request_id);
    await settle(call, a.body.request_id);
  });
});

describe("hostile input", () => {
  let server: LocalServer;
  let call: Api;
  before(async () => {
    server = await startLocalServer({ seqGapTimeoutMs: 60_000 });
    call = api(server);
  });
  after(async () => {
    await server.close();
  });

  test("10 000-deep JSON is a 400 naming the depth limit, not a 500", async () => {
    const deep = "[".repeat(10_000) + "]".repeat(10_000);
    const r = await call("POST", "/api/v1/create_session", deep);
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.field, "body");
    assert.match(r.body.detail, /nest.*deep|depth/i);
    const objects = `{"tags":[],"user_metadata":${'{"a":'.repeat(5000)}1${"}".repeat(5000)},"sdk_version":"t"}`;
    assert.equal((await call("POST", "/api/v1/create_session", objects)).status, 400);
    assert.equal((await call("GET", "/api/v1/healthz")).status, 200);
  });

  test("seq_id must be an int32 >= 1: out-of-range or non-integer values are a 400 and do not wedge the model", async () => {
    const { runId } = await newModel(call);
    for (const bad of [1e308, 2 ** 53 + 2, 2 ** 31, -1, 0, 1.5, "1", null]) {
      const r = await call("POST", "/api/v1/optim_step", { model_id: runId, seq_id: bad, adam_params: { learning_rate: 0.01 } });
      assert.equal(r.status, 400, `seq_id ${JSON.stringify(bad)}: ${r.status} ${JSON.stringify(r.body)}`);
      assert.equal(r.body.field, "body.seq_id");
    }
    const far = await call("POST", "/api/v1/optim_step", { model_id: runId, seq_id: 1 + 10_001, adam_params: { learning_rate: 0.01 } });
    assert.equal(far.status, 400, JSON.stringify(far.body));
    assert.equal(far.body.field, "body.seq_id");
    assert.match(far.body.detail, /ahead/);
    const started = Date.now();
    await run(call, "/api/v1/optim_step", { model_id: runId, seq_id: 1, adam_params: { learning_rate: 0.01 } });
    await run(call, "/api/v1/optim_step", { model_id: runId, seq_id: 2, adam_params: { learning_rate: 0.01 } });
    assert.ok(Date.now() - started < 5000, "seq 1 and 2 ran at once");
  });

  test("a non-JSON body to a JSON route is a 415", async () => {
    const body = JSON.stringify({ tags: [], user_metadata: {}, sdk_version: "t" });
    const plain = await call("POST", "/api/v1/create_session", body, { "content-type": "text/plain" });
    assert.equal(plain.status, 415, JSON.stringify(plain.body));
    assert.match(plain.body.detail, /application\/json/);
    const form = await call("POST", "/api/v1/create_session", body, { "content-type": "application/x-www-form-urlencoded" });
    assert.equal(form.status, 415);
    const proto = await call("POST", "/api/v1/create_session", body, { "content-type": "application/x-protobuf" });
    assert.equal(proto.status, 415, "protobuf only on forward_backward");
    assert.equal((await call("POST", "/api/v1/create_session", body, { "content-type": "application/json; charset=utf-8" })).status, 200);
  });

  test("the fault-injection admin route is off unless enabled at start", async () => {
    const r = await call("POST", "/local/admin/faults", { rules: [{ status: 500 }] });
    assert.equal(r.status, 404);
    assert.equal((await call("GET", "/api/v1/healthz")).status, 200);
  });
});

describe("admin route with fault injection enabled", () => {
  test("needs the server's own key; any other valid key gets 403", async () => {
    await withServer({ faultInjection: true, extraApiKeys: ["tml-other-user"] }, async (server) => {
      const other = await api(server, "tml-other-user")("POST", "/local/admin/faults", { rules: [{ status: 500 }] });
      assert.equal(other.status, 403, JSON.stringify(other.body));
      assert.equal((await api(server, "tml-other-user")("GET", "/api/v1/healthz")).status, 200);
      const synthetic = await api(server, "tml-other-user")("POST", "/local/admin/synthetic_checkpoint", { name: "x", size_bytes: 1 });
      assert.equal(synthetic.status, 403);
      const own = await api(server)("POST", "/local/admin/faults", { rules: [{ path: "/api/v1/healthz", times: 1, status: 500 }] });
      assert.equal(own.status, 200);
      assert.equal((await api(server)("GET", "/api/v1/healthz")).status, 500);
    });
  });
});

describe("idle connections are closed", () => {
  const openSocket = (server: LocalServer): Promise<Socket> =>
    new Promise((resolve, reject) => {
      const s = connect(server.port, "127.0.0.1", () => resolve(s));
      s.on("error", reject);
    });
  const closedWithin = (socket: Socket, ms: number): Promise<{ closed: boolean; data: string }> =>
    new Promise((resolve) => {
      let data = "";
      socket.on("data", (d) => (data += d.toString()));
      const timer = setTimeout(() => {
        socket.destroy();
        resolve({ closed: false, data });
      }, ms);
      socket.on("close", () => {
        clearTimeout(timer);
        resolve({ closed: true, data });
      });
    });

  test("a connection that sends nothing, one that stalls in its headers, and an idle keep-alive one are closed", async () => {
    await withServer({ timeouts: { headersMs: 300, keepAliveMs: 300, idleSocketMs: 600 } }, async (server) => {
      const silent = await openSocket(server);
      const stalled = await openSocket(server);
      stalled.write("GET /api/v1/healthz HTTP/1.1\r\nHost: x\r\n");
      const kept = await openSocket(server);
      kept.write("GET /api/v1/healthz HTTP/1.1\r\nHost: x\r\n\r\n");
      const [a, b, c] = await Promise.all([closedWithin(silent, 4000), closedWithin(stalled, 4000), closedWithin(kept, 4000)]);
      assert.ok(a.closed, "silent connection closed");
      assert.ok(b.closed, "stalled headers closed");
      assert.ok(c.closed && c.data.startsWith("HTTP/1.1 200"), `keep-alive connection answered then closed: ${c.data.slice(0, 40)}`);
    });
  });
});

describe("load_weights of another user's checkpoint", () => {
  test("fails as not found while it is private, and succeeds once its owner publishes it", async () => {
    await withServer({ extraApiKeys: ["tml-other-user"] }, async (server) => {
      const owner = api(server);
      const other = api(server, "tml-other-user");
      const a = await newModel(owner);
      await trainStep(owner, a.runId, a.seq);
      const path = (await run(owner, "/api/v1/save_weights", { model_id: a.runId, seq_id: a.seq(), path: "mine" })).path as string;

      const b = await newModel(other);
      const load = await other("POST", "/api/v1/load_weights", { model_id: b.runId, seq_id: b.seq(), path, optimizer: false });
      assert.equal(load.status, 200);
      const failed = await settle(other, load.body.request_id);
      assert.match(String(failed.error), /not found/);
      const viaLoad = await other("POST", "/api/v1/load_weights", { session_id: b.session, model_seq_id: 1, path, optimizer: false });
      assert.equal(viaLoad.status, 404, JSON.stringify(viaLoad.body));

      assert.equal((await owner("POST", `/api/v1/training_runs/${a.runId}/checkpoints/weights/mine/publish`)).status, 204);
      await run(other, "/api/v1/load_weights", { model_id: b.runId, seq_id: b.seq(), path, optimizer: false });
      const created = await run(other, "/api/v1/load_weights", { session_id: b.session, model_seq_id: 2, path, optimizer: false });
      assert.equal(created.model_id, `${b.session}:train:2`);
    });
  });
});

describe("checkpoint names: one rule (spec, SDK, server)", () => {
  const LONG_DOTTED = `a${".".repeat(199)}`;

  test("the server refuses names outside the rule with a 400 naming the field, before anything runs", async () => {
    await withServer({}, async (server) => {
      const call = api(server);
      const { runId, seq } = await newModel(call);
      for (const bad of ["has space", "a\\b", "a?b", "a#b", "é", "a:b", "50%", ".", "..", "n".repeat(201), ""]) {
        const save = await call("POST", "/api/v1/save_weights", { model_id: runId, seq_id: seq(), path: bad });
        assert.equal(save.status, 400, `save_weights ${JSON.stringify(bad)}: ${save.status} ${JSON.stringify(save.body)}`);
        assert.equal(save.body.field, "body.path");
        assert.match(save.body.detail, /1-200 characters/);
        const sampler = await call("POST", "/api/v1/save_weights_for_sampler", { model_id: runId, seq_id: seq(), path: bad });
        assert.equal(sampler.status, 400, `save_weights_for_sampler ${JSON.stringify(bad)}: ${JSON.stringify(sampler.body)}`);
        assert.equal(sampler.body.field, "body.path");
      }
      for (const bad of ["has%20space", "a%5Cb", "a%3Fb", "a%23b", "%C3%A9", "n".repeat(201)]) {
        const r = await call("DELETE", `/api/v1/training_runs/${runId}/checkpoints/weights/${bad}`);
        assert.equal(r.status, 400, `${bad}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.field, "path.checkpoint_name");
        assert.equal((await call("GET", `/api/v1/training_runs/${runId}/checkpoints/weights/${bad}/archive`)).status, 400);
      }
      assert.deepEqual((await call("GET", `/api/v1/training_runs/${runId}/checkpoints`)).body.checkpoints, []);
    });
  });

  test("every name the rule allows can be saved, listed, downloaded, deleted, and survives a restart", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "tinker-names-"));
    const names = [LONG_DOTTED, "n".repeat(200), "A-z_0.9", ".hidden", "...", "x"];
    const expected = names.map((n) => `weights/${n}`).sort();
    let runId = "";
    try {
      await withServer({ dataDir }, async (server) => {
        const call = api(server);
        const model = await newModel(call);
        runId = model.runId;
        for (const name of names) await run(call, "/api/v1/save_weights", { model_id: runId, seq_id: model.seq(), path: name });
        const listed = ((await call("GET", `/api/v1/training_runs/${runId}/checkpoints`)).body.checkpoints as AnyJson[]).map(
          (c) => c.checkpoint_id,
        );
        assert.deepEqual(listed.sort(), expected);
        const url = (await call("GET", `/api/v1/training_runs/${runId}/checkpoints/weights/${LONG_DOTTED}/archive`)).headers.get(
          "location",
        )!;
        const tar = await fetch(url);
        assert.equal(tar.status, 200);
        await tar.arrayBuffer();
      });
      await withServer({ dataDir }, async (server) => {
        const call = api(server);
        const listed = ((await call("GET", `/api/v1/training_runs/${runId}/checkpoints`)).body.checkpoints as AnyJson[]).map(
          (c) => c.checkpoint_id,
        );
        assert.deepEqual(listed.sort(), expected, "all names survive a restart");
        for (const name of names) {
          assert.equal((await call("DELETE", `/api/v1/training_runs/${runId}/checkpoints/weights/${name}`)).status, 204, name);
        }
      });
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe("checkpoint names: the SDK and the server apply the same rule", () => {
  test("both take it from the spec, and agree on every sample name", async () => {
    const { validateCheckpointName } = await import("../src/core/tinker-path.js");
    const { checkCheckpointName } = await import("../src/server/util.js");
    const spec = (await import("../generated/openapi.json", { with: { type: "json" } })).default as AnyJson;
    const rule = spec.components.schemas.CheckpointName;
    const params = spec.components.parameters.CheckpointName.schema.$ref;
    assert.equal(params, "#/components/schemas/CheckpointName");
    assert.equal(spec.components.schemas.SaveWeightsRequest.properties.path.$ref, "#/components/schemas/CheckpointName");
    assert.equal(spec.components.schemas.SaveWeightsForSamplerRequest.properties.path.$ref, "#/components/schemas/CheckpointName");
    const specRe = new RegExp(rule.pattern, "u");
    const samples = [
      "",
      ".",
      "..",
      "...",
      ".a",
      "a.",
      "ckpt-0001",
      "step_000100",
      "v1.2",
      "final",
      "a b",
      " a",
      "a\tb",
      "a/b",
      "a\\b",
      "a?b",
      "a#b",
      "a:b",
      "a%b",
      "a+b",
      "a@b",
      "a~b",
      "a=b",
      "é",
      "ß",
      "日本",
      "emoji😀",
      "a\u0000b",
      "a\u200bb",
      "n".repeat(199),
      "n".repeat(200),
      "n".repeat(201),
      ".".repeat(200),
      "-",
      "_",
      "0",
    ];
    for (const name of samples) {
      const byServer = checkCheckpointName(name) === undefined;
      let bySdk = true;
      try {
        validateCheckpointName(name);
      } catch {
        bySdk = false;
      }
      const bySpec = name.length >= rule.minLength && name.length <= rule.maxLength && specRe.test(name);
      assert.equal(bySdk, bySpec, `SDK vs spec on ${JSON.stringify(name)}`);
      assert.equal(byServer, bySpec, `server vs spec on ${JSON.stringify(name)}`);
    }
  });
});

describe("tinker-ts serve --fault-injection", () => {
  test("enables the admin route; without it the route does not exist", async () => {
    const { runServe } = await import("../src/server/serve.js");
    const dir = await mkdtemp(join(tmpdir(), "tinker-serve-"));
    try {
      for (const [flag, expected] of [
        [[], 404],
        [["--fault-injection"], 200],
      ] as const) {
        const server = await runServe(["--port", "0", "--data-dir", dir, "--quiet", ...flag], {
          handleSignals: false,
          stdout: () => undefined,
        });
        try {
          const r = await api(server!)("POST", "/local/admin/faults", { rules: [] });
          assert.equal(r.status, expected, JSON.stringify(r.body));
        } finally {
          await server!.close();
        }
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
