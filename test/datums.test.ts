/**
 * Datums for every loss (PROTOCOL §11): the typed helpers' alignment and dtypes, and the validation that refuses
 * a malformed batch with a typed error naming the field, before anything is sent.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  crossEntropyDatum,
  InvalidArgumentError,
  InvalidDatumError,
  rlDatum,
  ServiceClient,
  startLocalServer,
  type Datum,
  type LocalServer,
  type TrainingClient,
} from "../src/index.js";
import { validateData } from "../src/datums.js";
import { BASE_MODEL } from "./helpers/training.js";

describe("datum helpers", () => {
  test("crossEntropyDatum: input = full[:-1], target_tokens = full[1:] as int64, weights float32", () => {
    const d = crossEntropyDatum(new Int32Array([10, 20, 30, 40]), { weights: new Float32Array([0, 1, 0.5]) });
    assert.deepEqual(d.model_input.chunks, [{ type: "encoded_text", tokens: [10, 20, 30] }]);
    assert.deepEqual(d.loss_fn_inputs["target_tokens"], { data: [20, 30, 40], dtype: "int64", shape: [3] });
    assert.deepEqual(d.loss_fn_inputs["weights"], { data: [0, 1, 0.5], dtype: "float32", shape: [3] });
  });

  test("rlDatum: the per-token arrays of the full sequence drop their first entry; clip thresholds per token", () => {
    const d = rlDatum([1, 2, 3, 4, 5], {
      logprobs: [0, 0, 0, -0.7, -1.2],
      advantages: [0, 0, 0, 0.5, 0.5],
      clipLowThreshold: 0.9,
      clipHighThreshold: [1, 1, 1, 1.1, 1.3],
    });
    assert.deepEqual(d.model_input.chunks, [{ type: "encoded_text", tokens: [1, 2, 3, 4] }]);
    assert.deepEqual(d.loss_fn_inputs, {
      target_tokens: { data: [2, 3, 4, 5], dtype: "int64", shape: [4] },
      logprobs: { data: [0, 0, -0.7, -1.2], dtype: "float32", shape: [4] },
      advantages: { data: [0, 0, 0.5, 0.5], dtype: "float32", shape: [4] },
      clip_low_threshold: { data: [0.9, 0.9, 0.9, 0.9], dtype: "float32", shape: [4] },
      clip_high_threshold: { data: [1, 1, 1.1, 1.3], dtype: "float32", shape: [4] },
    });
    for (const loss of ["importance_sampling", "ppo", "cispo", "dro"] as const) validateData([d], loss, "forwardBackward");
    assert.throws(() => rlDatum([1, 2, 3], { logprobs: [0, 0], advantages: [0, 0, 0] }), /logprobs must have 3 entries/);
    assert.throws(() => rlDatum([1, 2, 3], { logprobs: [0, NaN, 0], advantages: [0, 0, 0] }), /logprobs\[1\] must be a finite number/);
    assert.throws(() => rlDatum([1], { logprobs: [0], advantages: [0] }), InvalidArgumentError);
  });

  test("any chunk type of the wire and sparse CSR tensors pass; inconsistent ones are refused naming the field", () => {
    const sparse: Datum = {
      model_input: { chunks: [{ type: "encoded_text", tokens: [1, 2] }] },
      loss_fn_inputs: {
        target_tokens: { data: [5, 7, 9], dtype: "int64", shape: [2, 3], sparse_crow_indices: [0, 2, 3], sparse_col_indices: [0, 2, 1] },
        weights: { data: [1, 1, 0, 0, 1, 0], dtype: "float32", shape: [2, 3] },
      },
    } as Datum;
    validateData([sparse], "cross_entropy", "forwardBackward");
    const multimodal = {
      model_input: {
        chunks: [
          { type: "encoded_text", tokens: [1] },
          { type: "image", data: new Uint8Array([137, 80]), format: "png", expected_tokens: 2 },
          { type: "dmel", dmel: "AAAA" },
        ],
      },
      loss_fn_inputs: crossEntropyDatum([1, 2, 3]).loss_fn_inputs,
    } as unknown as Datum;
    validateData([multimodal], "cross_entropy", "forwardBackward");
    const refused = (d: unknown, path: string, loss: "cross_entropy" | "ppo" = "cross_entropy"): void => {
      assert.throws(
        () =>
          validateData(
            [loss === "ppo" ? rlDatum([1, 2], { logprobs: [0, 0], advantages: [0, 1] }) : crossEntropyDatum([1, 2, 3]), d as Datum],
            loss,
            "forwardBackward",
          ),
        (e: unknown) => e instanceof InvalidDatumError && e.path === path,
        path,
      );
    };
    // biome-ignore lint/suspicious/noExplicitAny: a cloned datum as plain JSON, broken at arbitrary depth by each case
    type DatumJson = Record<string, any>;
    const edit = (f: (d: DatumJson) => void): unknown => {
      const d = structuredClone(sparse) as DatumJson;
      f(d);
      return d;
    };
    refused(
      edit((d) => (d.loss_fn_inputs.target_tokens.sparse_crow_indices = [0, 2, 4])),
      "data[1].loss_fn_inputs.target_tokens",
    );
    refused(
      edit((d) => (d.loss_fn_inputs.target_tokens.sparse_col_indices = [0, 3, 1])),
      "data[1].loss_fn_inputs.target_tokens.sparse_col_indices[1]",
    );
    refused(
      edit((d) => delete d.loss_fn_inputs.target_tokens.sparse_col_indices),
      "data[1].loss_fn_inputs.target_tokens",
    );
    refused(
      edit((d) => (d.loss_fn_inputs.weights.shape = [3, 2])),
      "data[1].loss_fn_inputs.weights",
    );
    refused(
      edit((d) => (d.loss_fn_inputs.weights.shape = [2, 2])),
      "data[1].loss_fn_inputs.weights.shape",
    );
    refused(
      edit((d) => (d.loss_fn_inputs.target_tokens.dtype = "float32")),
      "data[1].loss_fn_inputs.target_tokens.dtype",
    );
    refused(
      edit((d) => delete d.loss_fn_inputs.weights),
      "data[1].loss_fn_inputs.weights",
    );
    refused(
      edit((d) => (d.loss_fn_inputs.weights.data[2] = Infinity)),
      "data[1].loss_fn_inputs.weights.data[2]",
    );
    refused(
      edit((d) => (d.model_input.chunks = [{ type: "image_asset_pointer", location: "s3://x" }])),
      "data[1].model_input.chunks[0].type",
    );
    refused(
      edit((d) => (d.model_input.chunks = [{ type: "image", data: new Uint8Array(1) }])),
      "data[1].model_input.chunks[0].format",
    );
    refused(
      edit((d) => (d.model_input.chunks = [{ type: "encoded_text", tokens: [1, 2, 3] }])),
      "data[1].loss_fn_inputs.target_tokens",
    );
    refused(crossEntropyDatum([1, 2, 3]), "data[1].loss_fn_inputs.logprobs", "ppo");
  });
});

describe("validation before sending", () => {
  let server: LocalServer;
  let service: ServiceClient;
  let training: TrainingClient;
  before(async () => {
    server = await startLocalServer();
    service = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey });
    training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 2 });
  });
  after(async () => {
    await service.close();
    await server.close();
  });

  test("a malformed batch, an unknown loss or a bad lossFnConfig throws at the call; nothing is sent and no seq id is taken", () => {
    const rl = rlDatum([1, 2, 3], { logprobs: [0, -1, -1], advantages: [0, 1, 1] });
    delete rl.loss_fn_inputs["advantages"];
    assert.throws(
      () => training.forwardBackward([rl], "importance_sampling"),
      (e: unknown) =>
        e instanceof InvalidDatumError &&
        e.path === "data[0].loss_fn_inputs.advantages" &&
        /required by importance_sampling/.test(e.message),
    );
    assert.throws(() => training.forward([crossEntropyDatum([1, 2])], "hinge" as "ppo"), /lossFn must be one of/);
    const ok = rlDatum([1, 2], { logprobs: [0, 0], advantages: [0, 1] });
    assert.throws(
      () => training.forwardBackward([ok], "ppo", { lossFnConfig: { clip_low_threshold: NaN } }),
      /lossFnConfig.clip_low_threshold/,
    );
    assert.throws(() => training.forwardBackward([], "cross_entropy"), InvalidArgumentError);
    assert.throws(
      () => training.forwardBackwardCustom([rlDatum([1, 2], { logprobs: [0, 0], advantages: [0, 0] })], () => ({ loss: 0, grad: [] })),
      /only target_tokens and weights/,
    );
    assert.equal(training.nextSeqId, 1);
    assert.equal(server.requests.filter((r) => r.path === "/api/v1/forward_backward").length, 0);
  });
});
