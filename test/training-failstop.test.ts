/**
 * A training client is fail-stop (PROTOCOL decisions 10 and 13; issue 12 item 2), against the local server over
 * HTTP: a failed chunk fails the whole future and nothing after it is sent; a submit that fails for good stops
 * the client; a failure the server reported for a whole operation, a 409 on save, and an abort before the
 * submit do not.
 */
import { test, describe, after } from "node:test";
import assert from "node:assert/strict";
import {
  APIUserAbortError,
  BadRequestError,
  ConflictError,
  crossEntropyDatum,
  InternalServerError,
  RequestFailedError,
  ServiceClient,
  startLocalServer,
  TrainingClientStoppedError,
  type Datum,
  type LocalServer,
} from "../src/index.js";
import { ADAM, BASE_MODEL, batch } from "./helpers/training.js";

const servers: LocalServer[] = [];
const services: ServiceClient[] = [];
after(async () => {
  for (const s of services) await s.close();
  for (const s of servers) await s.close();
});

async function setup(
  clientConfig: Record<string, unknown> = {},
  futureDelayMs = 0,
): Promise<{ server: LocalServer; service: ServiceClient }> {
  // A short gap bound: if the client wrongly left a seq id unsent, later ops would still run after 300 ms.
  const server = await startLocalServer({ clientConfig, seqGapTimeoutMs: 300, futureDelayMs });
  const service = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey, maxRetries: 0 });
  servers.push(server);
  services.push(service);
  return { server, service };
}

function posts(server: LocalServer, path: string, modelId: string): Record<string, unknown>[] {
  return server.requests
    .filter((r) => r.path === path && (r.body as { model_id?: string } | undefined)?.model_id === modelId)
    .map((r) => r.body as Record<string, unknown>);
}

async function rejection(p: PromiseLike<unknown>): Promise<unknown> {
  return p.then(
    () => assert.fail("expected a rejection"),
    (e: unknown) => e,
  );
}

/** A batch of 6 datums whose 4th has a target token no vocabulary has: the server fails the chunk holding it. */
function batchWithBadDatum(): Datum[] {
  const data = batch(0, 6, 8);
  const bad = crossEntropyDatum([1, 2, 3, 4]);
  (bad.loss_fn_inputs["target_tokens"] as { data: number[] }).data = [2, 3, 2_000_000_000];
  data[3] = bad;
  return data;
}

describe("fail-stop", () => {
  for (const parallel of [true, false]) {
    test(`${parallel ? "parallel" : "serial"}: a chunk the server fails fails the future; the queued optimStep and save reject at once, unsent`, async () => {
      const { server, service } = await setup({ fwdbwd_max_chunk_len: 2, parallel_fwdbwd_chunks: parallel });
      const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
      const before = await training.saveState("before");
      const fb = training.forwardBackward(batchWithBadDatum(), "cross_entropy"); // chunks: seq 2, 3 (bad), 4
      const step = training.optimStep(ADAM);
      const save = training.saveState("after");
      const started = Date.now();
      const err = await rejection(fb);
      // The server refuses the bad token at submit (400) or when it runs the chunk (a failed future).
      assert.ok(err instanceof RequestFailedError || err instanceof BadRequestError, String(err));
      const stepErr = await rejection(step);
      assert.ok(stepErr instanceof TrainingClientStoppedError, String(stepErr));
      assert.equal(stepErr.failedOperation, "forward_backward");
      assert.equal(stepErr.failedSeqId, 2);
      assert.equal(stepErr.operation, "optim_step");
      assert.equal(stepErr.seqId, 5);
      assert.match(stepErr.message, /forward_backward \(seq_id 2\) failed for good/);
      assert.match(stepErr.message, /resumeOrStart/);
      assert.ok((await rejection(save)) instanceof TrainingClientStoppedError);
      assert.ok(Date.now() - started < 5_000, "nothing hangs");
      // Neither the step nor the save reached the server: no partial gradients were applied, no checkpoint appeared.
      await new Promise((r) => setTimeout(r, 400));
      assert.equal(posts(server, "/api/v1/optim_step", training.modelId).length, 0);
      assert.equal(posts(server, "/api/v1/save_weights", training.modelId).length, 1);
      const listed = await service.createRestClient().listCheckpoints(training.modelId);
      assert.deepEqual(
        listed.checkpoints.map((c) => c.tinker_path),
        [before.path],
      );
      // New calls throw at once and take no seq id; unload still works.
      const next = training.nextSeqId;
      assert.throws(() => training.forwardBackward(batch(1), "cross_entropy"), TrainingClientStoppedError);
      assert.throws(() => training.optimStep(ADAM), TrainingClientStoppedError);
      assert.equal(training.nextSeqId, next);
      await training.unload();
    });
  }

  test("a chunk whose submit fails for good: chunk 1 is never sent, the future fails with that error, the next optimStep rejects", async () => {
    const { server, service } = await setup({ fwdbwd_max_chunk_len: 2, parallel_fwdbwd_chunks: true });
    const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
    // The first forward_backward POST to arrive is one of chunks 2..3 (chunk 1 goes last).
    server.setFaults([{ path: "/api/v1/forward_backward", times: 1, status: 400 }]);
    const fb = training.forwardBackward(batch(0, 6, 8), "cross_entropy");
    const step = training.optimStep(ADAM);
    assert.ok((await rejection(fb)) instanceof BadRequestError);
    const stepErr = await rejection(step);
    assert.ok(stepErr instanceof TrainingClientStoppedError, String(stepErr));
    assert.ok(stepErr.cause instanceof BadRequestError);
    await new Promise((r) => setTimeout(r, 400));
    const sent = posts(server, "/api/v1/forward_backward", training.modelId).map((b) => b["seq_id"]);
    assert.ok(!sent.includes(1), `chunk 1 was never sent (sent: ${sent.join(", ")})`);
    assert.equal(posts(server, "/api/v1/optim_step", training.modelId).length, 0);
  });

  test("a submit that fails for good stops the client: the queued saveState rejects and no checkpoint appears", async () => {
    const { server, service } = await setup();
    const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
    await training.forwardBackward(batch(0), "cross_entropy");
    server.setFaults([{ path: "/api/v1/optim_step", status: 503 }]);
    const step = training.optimStep(ADAM);
    const save = training.saveState("after-step");
    assert.ok((await rejection(step)) instanceof InternalServerError);
    const saveErr = await rejection(save);
    assert.ok(saveErr instanceof TrainingClientStoppedError, String(saveErr));
    assert.equal(saveErr.failedOperation, "optim_step");
    server.clearFaults();
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(posts(server, "/api/v1/save_weights", training.modelId).length, 0);
    const listed = await service.createRestClient().listCheckpoints(training.modelId);
    assert.equal(listed.checkpoints.length, 0);
    assert.throws(() => training.saveState("later"), TrainingClientStoppedError);
  });

  test("what does not stop the client: a whole operation the server failed, a 409 on save, an abort before sending", async () => {
    const { service } = await setup({}, 100);
    const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
    // Both sampler saves pass the submit check; the second fails when it runs (the name exists by then).
    const first = training.saveWeightsForSampler("twice");
    const second = training.saveWeightsForSampler("twice");
    await first;
    assert.ok((await rejection(second)) instanceof RequestFailedError);
    await training.saveState("taken");
    assert.ok((await rejection(training.saveState("taken"))) instanceof ConflictError);
    const next = training.nextSeqId;
    const aborted = AbortSignal.abort();
    assert.throws(() => training.optimStep(ADAM, { signal: aborted }), APIUserAbortError);
    assert.equal(training.nextSeqId, next, "an abort before the submit takes no seq id");
    const fb = training.forwardBackward(batch(0), "cross_entropy");
    assert.equal(fb.seqId, next);
    await fb;
    await training.optimStep(ADAM);
  });

  test("an abort while queued (seq id taken, nothing sent) stops the client: its seq id can never be filled", async () => {
    const { server, service } = await setup();
    const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
    await training.forwardBackward(batch(0), "cross_entropy");
    server.setFaults([{ path: "/api/v1/optim_step", times: 1, status: 503, retryAfter: 1 }]);
    const step = training.optimStep(ADAM, { maxRetries: 1 }); // its submit waits ~1 s before the retry
    const controller = new AbortController();
    const save = training.saveState("queued", { signal: controller.signal });
    setTimeout(() => controller.abort(), 100);
    assert.ok((await rejection(save)) instanceof APIUserAbortError);
    await step; // the step itself went through
    const err = (() => {
      try {
        training.optimStep(ADAM);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    assert.ok(err instanceof TrainingClientStoppedError, String(err));
    assert.equal(err.failedOperation, "save_weights");
    assert.equal(posts(server, "/api/v1/save_weights", training.modelId).length, 0);
  });
});
