/**
 * The official Python SDK 0.25.0's protobuf training wire, recorded once against the local server
 * (test/fixtures/python-wire/, see its README) and replayed here offline, without Python:
 *
 * - the recorded requests (plain and zstd-compressed) train a fresh model on the local server again, call for call;
 * - the SDK's own encoding of the same datums is byte-identical to what the Python SDK sent;
 * - the SDK decodes the recorded results exactly as the Python SDK did;
 * - the Python SDK polled with the same headers the SDK sends (Accept: application/x-protobuf, the request type).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { fromBinary } from "@bufbuild/protobuf";
import { decompress } from "fzstd";
import { ForwardBackwardOutputSchema } from "../generated/proto/tinker_public_pb.js";
import { startLocalServer, type Datum, type LossFnType } from "../src/index.js";
import { decodeForwardBackwardOutput, encodeForwardBackwardRequest } from "../src/internal/proto/forward-backward.js";
import {
  canonicalMapOrder,
  concat,
  createModel,
  FORWARD_BACKWARD_REQUEST_MAPS,
  modelIdOverride,
  pollResult,
  post,
  zstdRawFrame,
} from "./helpers/proto-wire.js";

type PyTensor = { data: number[]; dtype: "int64" | "float32"; shape: number[] | null };
type PyDatum = { tokens: number[]; loss_fn_inputs: Record<string, PyTensor> };
type PyCall = {
  kind: "forward_backward" | "forward";
  batch: string;
  loss_fn: LossFnType;
  loss_fn_config: Record<string, number> | null;
  result: unknown;
};
type Python = { sdk_version: string; model_id: string; batches: Record<string, PyDatum[]>; calls: PyCall[] };
type Manifest = {
  calls: Array<{
    request: string;
    result: string;
    seq_id: number;
    forward_only: boolean;
    submit_headers: Record<string, string | undefined>;
    poll_headers: Record<string, string | undefined>;
  }>;
};

const fixtures = new URL("./fixtures/python-wire/", import.meta.url);
const load = async (mode: string) => {
  const dir = new URL(`${mode}/`, fixtures);
  const manifest = JSON.parse(await readFile(new URL("manifest.json", dir), "utf8")) as Manifest;
  const python = JSON.parse(await readFile(new URL("python.json", dir), "utf8")) as Python;
  const file = (name: string) => readFile(new URL(name, dir)).then((b) => new Uint8Array(b));
  return { manifest, python, file };
};

const toDatum = (d: PyDatum): Datum => ({
  model_input: { chunks: [{ type: "encoded_text", tokens: d.tokens }] },
  loss_fn_inputs: Object.fromEntries(
    Object.entries(d.loss_fn_inputs).map(([k, t]) => [
      k,
      { data: t.data, dtype: t.dtype, ...(t.shape === null ? {} : { shape: t.shape }) },
    ]),
  ),
});

/** Operations the Python script ran between its forward/forward_backward calls (seq ids not in the manifest). */
const ADAM = { learning_rate: 0.02, beta1: 0.9, beta2: 0.95, eps: 1e-12, weight_decay: 0, grad_clip_norm: 0 };

for (const mode of ["plain", "zstd"] as const) {
  describe(`Python SDK 0.25.0 wire (${mode})`, () => {
    test("the SDK encodes the same datums to the same bytes", async () => {
      const { manifest, python, file } = await load(mode);
      assert.equal(python.sdk_version, "0.25.0");
      for (const [i, call] of manifest.calls.entries()) {
        const py = python.calls[i]!;
        let sent: Uint8Array = await file(call.request);
        assert.equal(call.submit_headers["content-type"], "application/x-protobuf");
        if (mode === "zstd") {
          assert.equal(call.submit_headers["content-encoding"], "zstd");
          sent = decompress(sent);
        } else {
          assert.equal(call.submit_headers["content-encoding"], undefined);
        }
        const mine = encodeForwardBackwardRequest({
          modelId: python.model_id,
          seqId: call.seq_id,
          data: python.batches[py.batch]!.map(toDatum),
          lossFn: py.loss_fn,
          lossFnConfig: py.loss_fn_config,
          forwardOnly: py.kind === "forward",
        });
        // Byte for byte, except the order of map entries, which the Python SDK's upb runtime varies per process.
        assert.equal(mine.length, sent.length);
        assert.deepEqual(
          Buffer.from(canonicalMapOrder(mine, FORWARD_BACKWARD_REQUEST_MAPS)),
          Buffer.from(canonicalMapOrder(sent, FORWARD_BACKWARD_REQUEST_MAPS)),
          `call ${i + 1} (${py.kind}, seq_id ${call.seq_id})`,
        );
      }
    });

    test("the SDK decodes the recorded results as the Python SDK did, and polls with the same headers", async () => {
      const { manifest, python, file } = await load(mode);
      for (const [i, call] of manifest.calls.entries()) {
        const py = python.calls[i]!;
        assert.deepEqual(decodeForwardBackwardOutput(await file(call.result)), py.result, `call ${i + 1}`);
        assert.deepEqual(call.poll_headers, {
          accept: "application/x-protobuf",
          "x-tinker-request-type": call.forward_only ? "Forward" : "ForwardBackward",
        });
      }
    });

    test("the recorded requests train a fresh model on the local server again, with results of the same layout", async () => {
      const { manifest, file } = await load(mode);
      const server = await startLocalServer({ port: 0 });
      try {
        const modelId = await createModel(server.baseUrl, server.apiKey, "Qwen/Qwen3-8B", 4);
        let seq = 1;
        for (const call of manifest.calls) {
          // The Python script ran an optim_step at every seq_id the manifest skips.
          for (; seq < call.seq_id; seq++) {
            const step = await post(server.baseUrl, server.apiKey, "/api/v1/optim_step", {
              adam_params: ADAM,
              model_id: modelId,
              seq_id: seq,
              type: "optim_step",
            });
            assert.equal(step.status, 200);
            assert.ok("metrics" in (await pollResult(server.baseUrl, server.apiKey, step.json!["request_id"] as string)).json!);
          }
          seq = call.seq_id + 1;
          const recorded = await file(call.request);
          // Retarget the recorded body at this model: a later model_id field wins (in zstd: one more frame).
          const override = modelIdOverride(modelId);
          const body = mode === "zstd" ? concat(recorded, zstdRawFrame(override)) : concat(recorded, override);
          const headers: Record<string, string> = { "content-type": call.submit_headers["content-type"]! };
          if (call.submit_headers["content-encoding"] !== undefined) headers["content-encoding"] = call.submit_headers["content-encoding"];
          const sub = await post(server.baseUrl, server.apiKey, "/api/v1/forward_backward", body, headers);
          assert.equal(sub.status, 200, JSON.stringify(sub.json));
          const res = await pollResult(
            server.baseUrl,
            server.apiKey,
            sub.json!["request_id"] as string,
            call.poll_headers as Record<string, string>,
          );
          assert.equal(res.contentType, "application/x-protobuf");
          const replayed = fromBinary(ForwardBackwardOutputSchema, res.bytes);
          const original = fromBinary(ForwardBackwardOutputSchema, await file(call.result));
          const layout = (m: typeof replayed) => ({
            type: m.lossFnOutputType,
            metrics: Object.keys(m.metrics).sort(),
            records: m.lossFnOutputs.map((r) => ({
              n: r.numDatums,
              fields: Object.fromEntries(
                Object.entries(r.fields).map(([k, bt]) => [k, { dtype: bt.dtype, bytes: bt.data.length, offsets: [...bt.offsets] }]),
              ),
            })),
          });
          assert.deepEqual(layout(replayed), layout(original));
        }
      } finally {
        await server.close();
      }
    });
  });
}
