/**
 * Issue 12 against the local server: answers lost after the server did the work (item 4), an already-aborted
 * signal (item 8), the seq gate under a retried submit and the TTL boundary (item 9).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  APIUserAbortError,
  ConflictError,
  InvalidTtlError,
  NotFoundError,
  ServiceClient,
  startLocalServer,
  type LocalServer,
  type TrainingClient,
} from "../src/index.js";
import { startScriptedServer } from "./helpers/http-server.js";
import { ADAM, BASE_MODEL, batch } from "./helpers/training.js";

describe("reliability against the local server", () => {
  let server: LocalServer;
  let service: ServiceClient;
  let training: TrainingClient;

  before(async () => {
    // A gap would stall for a minute: any burned seq_id shows up as a test timeout.
    server = await startLocalServer({ seqGapTimeoutMs: 60_000 });
    service = new ServiceClient({
      baseUrl: server.baseUrl,
      apiKey: server.apiKey,
      logger: { warn: () => undefined },
    });
    training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
  });
  after(async () => {
    server.clearFaults();
    await service.close();
    await server.close();
  });

  test("a save whose answer is lost is retried with its seq_id and lands once (no spurious 409)", async () => {
    server.setFaults([{ path: "/api/v1/save_weights", method: "POST", times: 1, loseResponse: true }]);
    const { path } = await training.saveState("lost-answer");
    const saves = server.requests.filter((r) => r.path === "/api/v1/save_weights");
    assert.equal(saves.length, 2, "the lost answer was retried");
    assert.equal(saves[0]?.headers["x-idempotency-key"], saves[1]?.headers["x-idempotency-key"]);
    assert.deepEqual(saves[0]?.body, saves[1]?.body);
    const listed = await service.createRestClient().listCheckpoints(training.modelId);
    assert.equal(listed.checkpoints.filter((c) => c.tinker_path === path).length, 1);
  });

  test("publish, unpublish and delete whose answer was lost succeed, and leave the state they promise", async () => {
    const rest = service.createRestClient();
    const { path } = await training.saveState("lost-publish");
    const route = `/api/v1/training_runs/${training.modelId}/checkpoints/weights/lost-publish`;
    const isPublic = async (): Promise<boolean> =>
      (await rest.listCheckpoints(training.modelId)).checkpoints.find((c) => c.tinker_path === path)?.public === true;

    server.setFaults([{ path: `${route}/publish`, method: "POST", times: 1, loseResponse: true }]);
    await rest.publishCheckpointFromTinkerPath(path);
    assert.equal(await isPublic(), true);

    server.setFaults([{ path: `${route}/publish`, method: "DELETE", times: 1, loseResponse: true }]);
    await rest.unpublishCheckpointFromTinkerPath(path);
    assert.equal(await isPublic(), false);

    server.setFaults([{ path: route, method: "DELETE", times: 1, loseResponse: true }]);
    await rest.deleteCheckpointFromTinkerPath(path);
    server.clearFaults();

    const after = await rest.listCheckpoints(training.modelId);
    assert.ok(!after.checkpoints.some((c) => c.tinker_path === path), "it was deleted");
    const mutating = server.requests.filter((r) => r.path.startsWith(route) && r.method !== "GET");
    assert.equal(mutating.length, 6, "each action was sent twice");
    for (let i = 0; i < 6; i += 2) assert.equal(mutating[i]?.headers["x-idempotency-key"], mutating[i + 1]?.headers["x-idempotency-key"]);
  });

  test("a 409 on publish/unpublish or a 404 on delete after a lost answer is success, logged at debug (scripted server)", async (t) => {
    // The server acts on the first attempt but its answer is lost; the retry meets the new state.
    const scripted = await startScriptedServer((req) => {
      // The client config (read first by every client, as the Python SDK does) answers normally.
      if (req.path === "/api/v1/client/config") return { status: 200, body: {} };
      const first = scripted.requests.filter((r) => r.method === req.method && r.path === req.path).length === 1;
      if (first) return { destroy: true };
      return req.method === "DELETE" && !req.path.endsWith("/publish")
        ? { status: 404, body: { detail: "not found" } }
        : { status: 409, body: { detail: "already" } };
    });
    t.after(() => scripted.close());
    const lines: string[] = [];
    const client = new ServiceClient({
      baseUrl: scripted.url,
      apiKey: "tml-scripted-key-0123",
      logger: { warn: () => undefined, debug: (m) => lines.push(m) },
      logLevel: "debug",
    });
    const rest = client.createRestClient();
    const path = "tinker://run-1:train:0/weights/a";
    await rest.publishCheckpointFromTinkerPath(path);
    await rest.unpublishCheckpointFromTinkerPath(path);
    await rest.deleteCheckpointFromTinkerPath(path);
    // At debug level the per-request lines come too; these are the notes about the lost answers.
    const notes = lines.filter((l) => l.includes("lost answer"));
    assert.equal(notes.length, 3, lines.join("\n"));
    assert.match(notes[0]!, /publish_checkpoint tinker:\/\/run-1:train:0\/weights\/a: already public/);
    assert.match(notes[1]!, /already private/);
    assert.match(notes[2]!, /already deleted/);
    assert.equal(scripted.requests.filter((r) => r.path !== "/api/v1/client/config").length, 6);
    await client.close();
  });

  test("without a lost answer, 409 on publish and 404 on delete are still errors", async () => {
    const rest = service.createRestClient();
    const { path } = await training.saveState("plain-conflict");
    await rest.publishCheckpointFromTinkerPath(path);
    await assert.rejects(rest.publishCheckpointFromTinkerPath(path), ConflictError);
    await rest.deleteCheckpointFromTinkerPath(path);
    await assert.rejects(rest.deleteCheckpointFromTinkerPath(path), NotFoundError);
  });

  test("every mutating request carries an X-Idempotency-Key", async () => {
    const mutating = server.requests.filter((r) => r.method !== "GET" && r.path.startsWith("/api/v1/"));
    assert.ok(mutating.length > 5);
    for (const r of mutating)
      assert.ok(typeof r.headers["x-idempotency-key"] === "string" && r.headers["x-idempotency-key"] !== "", `${r.method} ${r.path}`);
  });

  test("a call with an already-aborted signal throws before taking a seq_id; the next op runs at once", async () => {
    const next = training.nextSeqId;
    assert.throws(() => training.optimStep(ADAM, { signal: AbortSignal.abort() }), APIUserAbortError);
    assert.throws(() => training.forwardBackward(batch(0), "cross_entropy", { signal: AbortSignal.abort() }), APIUserAbortError);
    assert.throws(() => training.saveState("never", { signal: AbortSignal.abort() }), APIUserAbortError);
    assert.equal(training.nextSeqId, next, "no seq_id was taken");
    const started = Date.now();
    const fb = training.forwardBackward(batch(1), "cross_entropy");
    assert.equal(fb.seqId, next);
    await fb.result({ timeoutMs: 10_000 });
    assert.ok(Date.now() - started < 10_000, "no gap to wait for");
  });

  test("the seq gate holds N+1's submit until N's retried submit (after a 503) went through", async () => {
    server.setFaults([{ path: "/api/v1/forward_backward", method: "POST", times: 1, status: 503 }]);
    const firstIndex = server.requests.length;
    const fb = training.forwardBackward(batch(2), "cross_entropy");
    const step = training.optimStep(ADAM);
    await Promise.all([fb, step]);
    const submits = server.requests
      .slice(firstIndex)
      .filter((r) => r.path === "/api/v1/forward_backward" || r.path === "/api/v1/optim_step")
      .map((r) => `${r.path.slice(8)}:${(r.body as { seq_id: number }).seq_id}:${r.status ?? "?"}`);
    assert.deepEqual(submits, [`forward_backward:${fb.seqId}:503`, `forward_backward:${fb.seqId}:200`, `optim_step:${step.seqId}:200`]);
  });

  test("create_session whose answer is lost makes one session (the retry carries the same X-Idempotency-Key)", async () => {
    const local = await startLocalServer({ faults: [{ path: "/api/v1/create_session", method: "POST", times: 1, loseResponse: true }] });
    const client = new ServiceClient({ baseUrl: local.baseUrl, apiKey: local.apiKey, logger: { warn: () => undefined } });
    try {
      await client.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
      const creates = local.requests.filter((r) => r.path === "/api/v1/create_session");
      assert.equal(creates.length, 2, "the lost answer was retried");
      assert.equal(creates[0]?.headers["x-idempotency-key"], creates[1]?.headers["x-idempotency-key"]);
      const { sessions } = await client.createRestClient().listSessions();
      assert.equal(sessions.length, 1, `sessions: ${JSON.stringify(sessions)}`);
    } finally {
      await client.close();
      await local.close();
    }
  });

  test("a TTL of 3599 s on saveState is refused before sending; 3600 s is accepted", async () => {
    const count = server.requests.length;
    assert.throws(() => training.saveState("ttl-3599", { ttlSeconds: 3599 }), InvalidTtlError);
    assert.throws(() => training.saveWeightsForSampler("ttl-3599", { ttlSeconds: 3599 }), InvalidTtlError);
    assert.equal(server.requests.length, count, "nothing was sent");
    await training.saveState("ttl-3600", { ttlSeconds: 3600 });
  });
});
