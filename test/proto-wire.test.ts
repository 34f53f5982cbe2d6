/**
 * forward / forward_backward over protobuf (PROTOCOL §10.1), end to end over loopback HTTP: what the SDK sends
 * and how it polls, what the local server accepts (protobuf, zstd, JSON without `type`) and rejects (400 naming
 * the problem), the protobuf result, `forward` leaving the model untouched, and the settable client config.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  ChunkSchema,
  DatumSchema,
  DType,
  EncodedTextChunkSchema,
  ForwardBackwardOutputSchema,
  ForwardBackwardRequestSchema,
  TensorSchema,
} from "../generated/proto/tinker_public_pb.js";
import { crossEntropyDatum, ServiceClient, startLocalServer, type LocalServer } from "../src/index.js";
import { decodeForwardBackwardOutput } from "../src/internal/proto/forward-backward.js";
import { runServe, ServeUsageError } from "../src/server/serve.js";
import { ADAM, BASE_MODEL, batch } from "./helpers/training.js";
import { concat, createModel, modelIdOverride, pollResult, post, varintField, zstdRawFrame } from "./helpers/proto-wire.js";

const PROTO = "application/x-protobuf";

describe("forward / forward_backward over protobuf", () => {
  let server: LocalServer;
  let service: ServiceClient;
  before(async () => {
    server = await startLocalServer({ port: 0 });
    service = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey });
  });
  after(async () => {
    await service.close();
    await server.close();
  });

  test("the SDK sends ForwardBackwardRequest protobuf (no `type`), polls with exactly Accept: application/x-protobuf and the request type, and decodes the protobuf result", async () => {
    const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
    // Cross-entropy datums that also carry the RL inputs, so one batch serves both losses.
    const data = batch(3, 3, 9).map((d) => {
      const n = (d.loss_fn_inputs["target_tokens"] as { data: number[] }).data.length;
      return {
        ...d,
        loss_fn_inputs: {
          ...d.loss_fn_inputs,
          logprobs: { data: Array(n).fill(-1), dtype: "float32" as const },
          advantages: { data: Array(n).fill(0.5), dtype: "float32" as const },
        },
      };
    });
    const fb = training.forwardBackward(data, "ppo", { lossFnConfig: { clip_low_threshold: 0.5 } });
    const fwd = training.forward(data, "cross_entropy");
    const [fbOut, fwdOut] = await Promise.all([fb, fwd]);
    const posts = server.requests.filter((r) => r.path === "/api/v1/forward_backward" && r.raw !== undefined);
    const mine = posts.filter((r) => fromBinary(ForwardBackwardRequestSchema, r.raw!).modelId === training.modelId);
    assert.equal(mine.length, 2);
    for (const [i, r] of mine.entries()) {
      assert.equal(r.headers["content-type"], PROTO);
      assert.match(String(r.headers["accept"]), /application\/json/);
      const msg = fromBinary(ForwardBackwardRequestSchema, r.raw!);
      assert.equal(msg.seqId, i + 1);
      assert.equal(msg.forwardOnly, i === 1);
      assert.equal(msg.lossFn, i === 0 ? "ppo" : "cross_entropy");
      assert.deepEqual(msg.lossFnConfig, i === 0 ? { clip_low_threshold: 0.5 } : {});
      assert.equal(msg.data.length, 3);
      const tokens = msg.data[0]!.modelInput[0]!.chunk.value as { tokens: Uint8Array };
      assert.deepEqual(
        [...new Int32Array(new Uint8Array(tokens.tokens).buffer)],
        (data[0]!.model_input.chunks[0] as { tokens: number[] }).tokens,
      );
      assert.ok(!("type" in (r.body as object)), "no stray type field");
    }
    for (const [future, type] of [
      [fb, "ForwardBackward"],
      [fwd, "Forward"],
    ] as const) {
      const id = await future.requestId;
      const polls = server.requests.filter(
        (r) => r.path === "/api/v1/retrieve_future" && (r.body as { request_id?: string }).request_id === id,
      );
      assert.ok(polls.length > 0);
      for (const p of polls) {
        assert.equal(p.headers["accept"], PROTO);
        assert.equal(p.headers["x-tinker-request-type"], type);
      }
    }
    // The same results as JSON carry float64 values; the SDK got the float32 protobuf ones.
    const json = await pollResult(server.baseUrl, server.apiKey, await fb.requestId);
    assert.equal(json.contentType, "application/json");
    const jsonOut = json.json as { loss_fn_outputs: Array<{ logprobs: { data: number[] } }>; metrics: Record<string, number> };
    assert.deepEqual(fbOut.metrics, jsonOut.metrics);
    assert.equal(fbOut.loss_fn_outputs.length, 3);
    fbOut.loss_fn_outputs.forEach((o, i) => {
      const lp = o["logprobs"]!;
      assert.equal(lp.dtype, "float32");
      assert.deepEqual(lp.shape, [8]);
      const ref = jsonOut.loss_fn_outputs[i]!.logprobs.data;
      assert.deepEqual(lp.data, ref.map(Math.fround));
    });
    assert.equal(fwdOut.loss_fn_outputs.length, 3);
  });

  test("forward changes nothing: no gradient reaches the next optim_step; forward_backward does", async () => {
    const data = batch(5, 2, 10);
    const lp = (o: Awaited<ReturnType<ServiceClientTraining["forward"]>>) => o.loss_fn_outputs.map((x) => x["logprobs"]!.data);
    const a = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
    const first = lp(await a.forward(data, "cross_entropy"));
    await a.forward(data, "cross_entropy");
    await a.optimStep(ADAM);
    assert.deepEqual(lp(await a.forward(data, "cross_entropy")), first, "forward + optim_step left the weights as they were");
    const b = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
    assert.deepEqual(lp(await b.forward(data, "cross_entropy")), first, "same start");
    await b.forwardBackward(data, "cross_entropy");
    await b.optimStep(ADAM);
    assert.notDeepEqual(lp(await b.forward(data, "cross_entropy")), first, "forward_backward + optim_step moved them");
  });

  test("an older client's JSON body (no type, no forward_only) still trains, answered as JSON or protobuf as the poll asks", async () => {
    const modelId = await createModel(server.baseUrl, server.apiKey);
    const datum = crossEntropyDatum([5, 6, 7, 8, 9]);
    const sub = await post(server.baseUrl, server.apiKey, "/api/v1/forward_backward", {
      model_id: modelId,
      seq_id: 1,
      forward_backward_input: { data: [datum], loss_fn: "cross_entropy" },
    });
    assert.equal(sub.status, 200, JSON.stringify(sub.json));
    const id = sub.json!["request_id"] as string;
    const asJson = await pollResult(server.baseUrl, server.apiKey, id);
    assert.equal(asJson.contentType, "application/json");
    const asProto = await pollResult(server.baseUrl, server.apiKey, id, { accept: PROTO, "x-tinker-request-type": "ForwardBackward" });
    assert.equal(asProto.status, 200);
    assert.equal(asProto.contentType, PROTO);
    const msg = fromBinary(ForwardBackwardOutputSchema, asProto.bytes);
    assert.equal(msg.lossFnOutputs.length, 1);
    const rec = msg.lossFnOutputs[0]!;
    assert.equal(rec.numDatums, 1n);
    for (const bt of Object.values(rec.fields)) {
      assert.notEqual(bt.dtype, DType.DTYPE_UNSPECIFIED);
      assert.equal(bt.offsets.length, 16, "num_datums + 1 int64 offsets");
    }
    for (const key of Object.keys(msg.metrics)) assert.match(key, /^[^:]+:[^:]+$/, "metric keys are name:reduction");
    const decoded = decodeForwardBackwardOutput(asProto.bytes);
    const json = asJson.json as { loss_fn_outputs: Array<{ logprobs: { data: number[] } }>; metrics: Record<string, number> };
    assert.deepEqual(decoded.metrics, json.metrics);
    assert.deepEqual(decoded.loss_fn_outputs[0]!["logprobs"]!.data, json.loss_fn_outputs[0]!.logprobs.data.map(Math.fround));
    // Pending and error answers stay JSON even when protobuf is asked for.
    const failing = await post(server.baseUrl, server.apiKey, "/api/v1/forward_backward", {
      model_id: modelId,
      seq_id: 2,
      forward_backward_input: { data: [crossEntropyDatum([1, 2, 3])], loss_fn: "no_such_loss" },
    });
    if (failing.status === 200) {
      const err = await pollResult(server.baseUrl, server.apiKey, failing.json!["request_id"] as string, { accept: PROTO });
      assert.equal(err.contentType, "application/json");
      assert.ok("error" in err.json!);
    } else {
      assert.equal(failing.json?.["detail"] !== undefined, true);
    }
  });

  test("an old tinker-ts JSON body with `type: forward_backward` (no longer in the spec) is still accepted", async () => {
    const modelId = await createModel(server.baseUrl, server.apiKey);
    const sub = await post(server.baseUrl, server.apiKey, "/api/v1/forward_backward", {
      model_id: modelId,
      seq_id: 1,
      type: "forward_backward",
      forward_backward_input: { data: [crossEntropyDatum([5, 6, 7])], loss_fn: "cross_entropy" },
    });
    assert.equal(sub.status, 200, JSON.stringify(sub.json));
    const res = await pollResult(server.baseUrl, server.apiKey, sub.json!["request_id"] as string);
    const json = res.json as { loss_fn_outputs: unknown[]; metrics: Record<string, number> };
    assert.equal(json.loss_fn_outputs.length, 1);
    assert.equal(typeof json.metrics["loss:sum"], "number");
  });

  test("malformed protobuf bodies get a 400 that names what is wrong (or 415 for what is not spoken)", async () => {
    const modelId = await createModel(server.baseUrl, server.apiKey);
    const good = (over: Record<string, unknown> = {}) =>
      toBinary(
        ForwardBackwardRequestSchema,
        create(ForwardBackwardRequestSchema, {
          modelId,
          seqId: 1,
          lossFn: "cross_entropy",
          data: [
            create(DatumSchema, {
              modelInput: [
                create(ChunkSchema, {
                  chunk: {
                    case: "encodedText",
                    value: create(EncodedTextChunkSchema, { tokens: new Uint8Array(new Int32Array([1, 2]).buffer) }),
                  },
                }),
              ],
              lossFnInputs: {
                target_tokens: create(TensorSchema, {
                  dtype: DType.DTYPE_INT64,
                  encoding: { case: "dense", value: new Uint8Array(new BigInt64Array([2n, 3n]).buffer) },
                }),
                weights: create(TensorSchema, {
                  dtype: DType.DTYPE_FLOAT32,
                  encoding: { case: "dense", value: new Uint8Array(new Float32Array([1, 1]).buffer) },
                }),
              },
            }),
          ],
          ...(over as object),
        }),
      );
    const send = (body: Uint8Array, headers: Record<string, string> = {}) =>
      post(server.baseUrl, server.apiKey, "/api/v1/forward_backward", body, headers);
    const cases: Array<[string, Promise<Awaited<ReturnType<typeof send>>>, number, RegExp]> = [
      ["garbage", send(Uint8Array.from([0xff, 0xff, 0xff, 0xff])), 400, /invalid protobuf ForwardBackwardRequest: the bytes do not decode/],
      ["seq_id 0", send(good({ seqId: 0 })), 400, /seq_id is missing or 0/],
      ["no model_id", send(good({ modelId: "" })), 400, /model_id is missing/],
      [
        "dtype 0",
        send(
          good({
            data: [
              create(DatumSchema, {
                lossFnInputs: { weights: create(TensorSchema, { encoding: { case: "dense", value: new Uint8Array(4) } }) },
              }),
            ],
          }),
        ),
        400,
        /data\[0\]\.loss_fn_inputs\.weights\.dtype is 0/,
      ],
      [
        "tokens of 6 bytes",
        send(
          good({
            data: [
              create(DatumSchema, {
                modelInput: [
                  create(ChunkSchema, {
                    chunk: { case: "encodedText", value: create(EncodedTextChunkSchema, { tokens: new Uint8Array(6) }) },
                  }),
                ],
              }),
            ],
          }),
        ),
        400,
        /data\[0\]\.model_input\[0\]\.encoded_text\.tokens holds 6 bytes, not a multiple of 4/,
      ],
      [
        "empty chunk",
        send(good({ data: [create(DatumSchema, { modelInput: [create(ChunkSchema, {})] })] })),
        400,
        /data\[0\]\.model_input\[0\] is empty/,
      ],
      [
        "tensor without values",
        send(good({ data: [create(DatumSchema, { lossFnInputs: { x: create(TensorSchema, { dtype: DType.DTYPE_FLOAT32 }) } })] })),
        400,
        /loss_fn_inputs\.x has neither dense nor sparse_csr/,
      ],
      ["bad zstd", send(good(), { "content-encoding": "zstd" }), 400, /zstd body cannot be decompressed/],
      ["gzip", send(good(), { "content-encoding": "gzip" }), 415, /Content-Encoding "gzip" is not supported/],
      ["protobuf elsewhere", post(server.baseUrl, server.apiKey, "/api/v1/optim_step", good()), 415, /send the body as application\/json/],
    ];
    for (const [name, pending, status, detail] of cases) {
      const res = await pending;
      assert.equal(res.status, status, `${name}: ${JSON.stringify(res.json)}`);
      assert.match(String(res.json?.["detail"]), detail, name);
    }
    // The valid body is accepted, also as a zstd stream (here: raw-block frames, the body split in two).
    const body = good({ seqId: 1 });
    const ok = await send(concat(zstdRawFrame(body.subarray(0, 40)), zstdRawFrame(body.subarray(40))), { "content-encoding": "zstd" });
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    const out = await pollResult(server.baseUrl, server.apiKey, ok.json!["request_id"] as string, { accept: PROTO });
    assert.equal(out.contentType, PROTO);
    // A later field overrides an earlier one (protobuf merge): appending model_id and seq_id retargets a body.
    const other = await createModel(server.baseUrl, server.apiKey);
    const retarget = await send(concat(good({ modelId: "nope" }), modelIdOverride(other), varintField(2, 1)));
    assert.equal(retarget.status, 200, JSON.stringify(retarget.json));
    assert.equal(retarget.json!["model_id"], other);
  });
});

type ServiceClientTraining = Awaited<ReturnType<ServiceClient["createLoraTrainingClient"]>>;

describe("client config", () => {
  test("startLocalServer({ clientConfig }) overrides what /api/v1/client/config answers; use_pyqwest_transport stays false", async () => {
    const server = await startLocalServer({
      port: 0,
      clientConfig: { proto_compress_fwdbwd: true, fwdbwd_max_chunk_len: 8, parallel_fwdbwd_chunks: false },
    });
    try {
      const res = await post(server.baseUrl, server.apiKey, "/api/v1/client/config", { sdk_version: "0.25.0" });
      assert.equal(res.status, 200);
      assert.equal(res.json!["proto_compress_fwdbwd"], true);
      assert.equal(res.json!["fwdbwd_max_chunk_len"], 8);
      assert.equal(res.json!["parallel_fwdbwd_chunks"], false);
      assert.equal(res.json!["use_pyqwest_transport"], false);
      assert.equal(res.json!["create_model_via_load_weights"], false);
    } finally {
      await server.close();
    }
    const plain = await startLocalServer({ port: 0 });
    try {
      const res = await post(plain.baseUrl, plain.apiKey, "/api/v1/client/config", { sdk_version: "0.25.0" });
      assert.equal(res.json!["proto_compress_fwdbwd"], false);
      assert.equal(res.json!["fwdbwd_max_chunk_len"], 1024);
    } finally {
      await plain.close();
    }
  });

  test("tinker-ts serve --client-config sets it; unknown fields and wrong types are usage errors", async () => {
    const { mkdtemp, rm } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const dir = await mkdtemp(join(tmpdir(), "tinker-serve-config-"));
    try {
      const server = await runServe(
        [
          "--port",
          "0",
          "--data-dir",
          dir,
          "--quiet",
          "--client-config",
          '{"create_model_via_load_weights": true, "fwdbwd_max_chunk_bytes_count": 1000}',
        ],
        {
          handleSignals: false,
          stdout: () => undefined,
        },
      );
      try {
        const res = await post(server!.baseUrl, server!.apiKey, "/api/v1/client/config", { sdk_version: "0.25.0" });
        assert.equal(res.json!["create_model_via_load_weights"], true);
        assert.equal(res.json!["fwdbwd_max_chunk_bytes_count"], 1000);
      } finally {
        await server!.close();
      }
      await assert.rejects(
        runServe(["--client-config", '{"chunk_len": 3}'], { handleSignals: false }),
        (e: unknown) => e instanceof ServeUsageError && /unknown field "chunk_len"/.test(e.message),
      );
      await assert.rejects(
        runServe(["--client-config", '{"fwdbwd_max_chunk_len": "8"}'], { handleSignals: false }),
        /fwdbwd_max_chunk_len must be an integer/,
      );
      await assert.rejects(runServe(["--client-config", "[1]"], { handleSignals: false }), /must be a JSON object/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
