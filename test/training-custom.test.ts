/**
 * forwardBackwardCustom (PROTOCOL §11.8) against the local server: a forward, the user's loss on the logprobs,
 * then a cross_entropy forward_backward with weights = −grad. A custom loss computing −Σ w·lp trains bit for bit
 * like cross_entropy; both calls take their seq ids at call time; a failing loss stops the client.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  crossEntropyDatum,
  ServiceClient,
  startLocalServer,
  TrainingClientStoppedError,
  type CustomLossFn,
  type Datum,
  type LocalServer,
} from "../src/index.js";
import { ADAM, BASE_MODEL } from "./helpers/training.js";

/** 5 datums with varied weights (exact in float32). */
function data(step: number): Datum[] {
  return Array.from({ length: 5 }, (_, i) =>
    crossEntropyDatum(
      Array.from({ length: 9 }, (_, j) => (step * 13 + i * 29 + j * 11) % 251),
      { weights: Array.from({ length: 8 }, (_, j) => [0, 0.5, 1, 2][(i + j) % 4]!) },
    ),
  );
}

/** −Σ w·lp over every datum; its gradient with respect to lp is −w. */
function weightedNll(batch: Datum[]): CustomLossFn {
  return (logprobs) => {
    let loss = 0;
    const grad = logprobs.map((lp, i) => {
      const w = batch[i]!.loss_fn_inputs["weights"]!.data;
      lp.forEach((v, j) => {
        loss -= w[j]! * v;
      });
      return Float32Array.from(w, (x) => -x);
    });
    return { loss, grad, metrics: { custom_loss: loss } };
  };
}

const posts = (server: LocalServer, modelId: string): Record<string, unknown>[] =>
  server.requests
    .filter((r) => r.path === "/api/v1/forward_backward" && (r.body as { model_id?: string }).model_id === modelId)
    .map((r) => r.body as Record<string, unknown>);

for (const chunkLen of [1024, 2]) {
  describe(`forwardBackwardCustom (fwdbwd_max_chunk_len ${chunkLen})`, () => {
    let server: LocalServer;
    let service: ServiceClient;
    before(async () => {
      server = await startLocalServer({ clientConfig: { fwdbwd_max_chunk_len: chunkLen } });
      service = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey });
    });
    after(async () => {
      await service.close();
      await server.close();
    });

    test("a custom −Σ w·lp trains bit for bit like cross_entropy; both calls take their seq ids at call time", async () => {
      const plain = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4, seed: 5 });
      const custom = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4, seed: 5 });
      const k = chunkLen === 2 ? 3 : 1;
      for (let step = 0; step < 3; step++) {
        const batch = data(step);
        const a = plain.forwardBackward(batch, "cross_entropy");
        const aStep = plain.optimStep(ADAM);
        const first = custom.nextSeqId;
        const b = custom.forwardBackwardCustom(batch, weightedNll(batch));
        assert.equal(b.seqId, first);
        assert.equal(custom.nextSeqId, first + 2 * k, "the forward and the forward_backward took their seq ids now");
        const bStep = custom.optimStep(ADAM);
        assert.equal(bStep.seqId, first + 2 * k);
        const [outA, , outB] = await Promise.all([a, aStep, b, bStep]);
        assert.equal(outB.metrics["loss:sum"], outA.metrics["loss:sum"], "the surrogate Σ −(−w)·lp is cross_entropy's loss");
        assert.ok(Math.abs(outB.metrics["custom_loss"]! - outA.metrics["loss:sum"]!) < 1e-3 * Math.abs(outA.metrics["loss:sum"]!));
        assert.deepEqual(
          outB.loss_fn_outputs.map((o) => o["logprobs"]?.data),
          outA.loss_fn_outputs.map((o) => o["logprobs"]?.data),
        );
      }
      const probe = data(9);
      const [pa, pb] = await Promise.all([plain.forward(probe, "cross_entropy"), custom.forward(probe, "cross_entropy")]);
      assert.deepEqual(
        pb.loss_fn_outputs.map((o) => o["logprobs"]?.data),
        pa.loss_fn_outputs.map((o) => o["logprobs"]?.data),
        "after 3 steps both models are identical",
      );
      // On the wire: forward (forward_only) then forward_backward with weights = −grad, in seq order.
      const sent = posts(server, custom.modelId).slice(0, 2 * k);
      assert.deepEqual(
        sent.map((b) => b["forward_only"] === true),
        [...new Array<boolean>(k).fill(true), ...new Array<boolean>(k).fill(false)],
      );
    });

    test("datums without weights get zeros in the forward; a failing loss fails the future and stops the client", async () => {
      const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
      const batch = data(0).map((d) => ({ ...d, loss_fn_inputs: { target_tokens: d.loss_fn_inputs["target_tokens"]! } }));
      const out = await training.forwardBackwardCustom(batch, (logprobs) => ({ loss: 0, grad: logprobs.map((lp) => lp.map(() => 0)) }));
      assert.equal(out.loss_fn_outputs.length, 5);
      const forwardBody = posts(server, training.modelId)[0] as { forward_backward_input: { data: Datum[] } };
      assert.deepEqual([...forwardBody.forward_backward_input.data[0]!.loss_fn_inputs["weights"]!.data], new Array(8).fill(0));

      const failing = training.forwardBackwardCustom(batch, () => {
        throw new Error("my loss broke");
      });
      const later = training.optimStep(ADAM);
      await assert.rejects(failing.result(), /my loss broke/);
      await assert.rejects(later.result(), TrainingClientStoppedError);
      assert.throws(() => training.optimStep(ADAM), TrainingClientStoppedError);
      assert.equal(
        server.requests.filter((r) => r.path === "/api/v1/optim_step" && (r.body as { model_id?: string }).model_id === training.modelId)
          .length,
        0,
      );
    });
  });
}
