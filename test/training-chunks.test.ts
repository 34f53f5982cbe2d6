/**
 * forward / forward_backward split into chunks as the client config says (PROTOCOL §10.2), against the local
 * server over HTTP: seq ids at call time, parallel and serial sends, the same results as one request, and the
 * client config read once per ServiceClient.
 */
import { test, describe, after } from "node:test";
import assert from "node:assert/strict";
import { crossEntropyDatum, ServiceClient, startLocalServer, type Datum, type LocalServer } from "../src/index.js";
import { ADAM, BASE_MODEL, batch } from "./helpers/training.js";

const servers: LocalServer[] = [];
const services: ServiceClient[] = [];
after(async () => {
  for (const s of services) await s.close();
  for (const s of servers) await s.close();
});

async function setup(clientConfig: Record<string, unknown>): Promise<{ server: LocalServer; service: ServiceClient }> {
  const server = await startLocalServer({ clientConfig });
  const service = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey });
  servers.push(server);
  services.push(service);
  return { server, service };
}

/** The seq ids of the forward_backward requests the server received for `modelId`, in arrival order. */
function fwdbwdSeqs(server: LocalServer, modelId: string): number[] {
  return server.requests
    .filter((r) => r.path === "/api/v1/forward_backward" && (r.body as { model_id?: string } | undefined)?.model_id === modelId)
    .map((r) => (r.body as { seq_id: number }).seq_id);
}

function datumsPerRequest(server: LocalServer, modelId: string): number[] {
  return server.requests
    .filter((r) => r.path === "/api/v1/forward_backward" && (r.body as { model_id?: string } | undefined)?.model_id === modelId)
    .map((r) => (r.body as { forward_backward_input: { data: unknown[] } }).forward_backward_input.data.length);
}

/** Asserts two per-datum logprob lists are equal within `rel` (relative). */
function assertClose(actual: (number[] | undefined)[], expected: (number[] | undefined)[], rel: number, message: string): void {
  assert.equal(actual.length, expected.length, message);
  actual.forEach((row, i) => {
    const want = expected[i]!;
    assert.equal(row?.length, want.length, message);
    for (const [j, v] of row!.entries())
      assert.ok(Math.abs(v - want[j]!) <= rel * Math.abs(want[j]!), `${message}: [${i}][${j}] ${v} vs ${want[j]}`);
  });
}

/** Trains two steps on 5 datums and returns everything a user could compare. */
async function run(service: ServiceClient, seed: number) {
  const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4, seed });
  const data: Datum[] = batch(3, 5, 10);
  const fb = training.forwardBackward(data, "cross_entropy");
  const step = training.optimStep(ADAM);
  const after = training.forwardBackward(batch(4, 5, 10), "cross_entropy");
  const [out1, , out2] = await Promise.all([fb, step, after]);
  return { training, fb, step, out1, out2 };
}

describe("chunked forward_backward", () => {
  test("parallel: k chunks take k seq ids at call time; chunks 2..k are sent before chunk 1; results equal one request's", async () => {
    const one = await setup({ fwdbwd_max_chunk_len: 1024 });
    const split = await setup({ fwdbwd_max_chunk_len: 2, parallel_fwdbwd_chunks: true });
    const a = await run(one.service, 7);
    const b = await run(split.service, 7);
    assert.equal(a.step.seqId, 2);
    assert.equal(b.fb.seqId, 1);
    assert.equal(b.step.seqId, 4, "5 datums in chunks of 2 take seq ids 1, 2, 3");
    const seqs = fwdbwdSeqs(split.server, b.training.modelId);
    const sizes = datumsPerRequest(split.server, b.training.modelId);
    assert.deepEqual([...seqs.slice(0, 2)].sort(), [2, 3], "chunks 2 and 3 go first, concurrently");
    assert.deepEqual(
      seqs.slice(0, 2).map((s) => sizes[seqs.indexOf(s)]),
      seqs.slice(0, 2).map((s) => (s === 2 ? 2 : 1)),
    );
    assert.equal(seqs[2], 1, "chunk 1 (lowest seq id) goes last");
    assert.deepEqual(fwdbwdSeqs(one.server, a.training.modelId), [1, 3]);
    // Same per-datum logprobs (bit for bit), same summed loss, and the same gradients: the next batch sees the same model.
    assert.deepEqual(
      b.out1.loss_fn_outputs.map((o) => o["logprobs"]?.data),
      a.out1.loss_fn_outputs.map((o) => o["logprobs"]?.data),
    );
    assert.ok(Math.abs(b.out1.metrics["loss:sum"]! - a.out1.metrics["loss:sum"]!) <= 1e-9 * Math.abs(a.out1.metrics["loss:sum"]!));
    // Gradients are summed per chunk, then across chunks: equal up to float rounding (1e-6 relative).
    assertClose(
      b.out2.loss_fn_outputs.map((o) => o["logprobs"]?.data),
      a.out2.loss_fn_outputs.map((o) => o["logprobs"]?.data),
      1e-6,
      "the step after a chunked forward_backward moved the model as after one request",
    );
    assert.equal(b.out1.loss_fn_outputs.length, 5);
  });

  test("serial: chunks are sent lowest seq id first, one after another, with the same results", async () => {
    const one = await setup({});
    const split = await setup({ fwdbwd_max_chunk_len: 2, parallel_fwdbwd_chunks: false });
    const a = await run(one.service, 11);
    const b = await run(split.service, 11);
    assert.deepEqual(fwdbwdSeqs(split.server, b.training.modelId), [1, 2, 3, 5, 6, 7]);
    assert.deepEqual(datumsPerRequest(split.server, b.training.modelId), [2, 2, 1, 2, 2, 1]);
    assertClose(
      b.out2.loss_fn_outputs.map((o) => o["logprobs"]?.data),
      a.out2.loss_fn_outputs.map((o) => o["logprobs"]?.data),
      1e-6,
      "serial chunks train like one request",
    );
  });

  test("the byte limit splits by the SDK's estimate, and an oversized datum travels alone", async () => {
    // crossEntropyDatum of n+1 tokens is estimated at n·(4 + 8 + 4) = 16n bytes.
    const { server, service } = await setup({ fwdbwd_max_chunk_bytes_count: 16 * 10 });
    const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
    const seq = (n: number, base: number): Datum => crossEntropyDatum(Array.from({ length: n + 1 }, (_, j) => (base + j) % 200));
    // 4 + 5 fit (144 ≤ 160); + 3 would be 192: new chunk; 30 alone (480 > 160); then 2 + 2.
    const fb = training.forwardBackward([seq(4, 1), seq(5, 2), seq(3, 3), seq(30, 4), seq(2, 5), seq(2, 6)], "cross_entropy");
    assert.equal(training.nextSeqId, 5, "4 chunks: seq ids 1-4");
    const out = await fb;
    assert.equal(out.loss_fn_outputs.length, 6);
    assert.deepEqual(
      out.loss_fn_outputs.map((o) => o["logprobs"]?.data.length),
      [4, 5, 3, 30, 2, 2],
      "outputs in datum order",
    );
    assert.deepEqual(datumsPerRequest(server, training.modelId).sort(), [1, 1, 2, 2]);
  });

  test("the client config is read once per ServiceClient, with its sdk_version, before the first training client", async () => {
    const { server, service } = await setup({ some_future_flag: "ignored" });
    await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
    await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
    const configs = server.requests.filter((r) => r.path === "/api/v1/client/config");
    assert.equal(configs.length, 1);
    assert.deepEqual(Object.keys(configs[0]!.body as object), ["sdk_version"]);
    const paths = server.requests.map((r) => r.path);
    assert.ok(paths.indexOf("/api/v1/client/config") < paths.indexOf("/api/v1/create_session"));
    // A REST-only client reads it once too (every client does, as the Python SDK's holders do: it says whether
    // the service wants JWTs), and creates no session.
    const sessions = server.requests.filter((r) => r.path === "/api/v1/create_session").length;
    const other = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey });
    await other.createRestClient().listTrainingRuns();
    await other.createRestClient().listTrainingRuns();
    await other.close();
    assert.equal(server.requests.filter((r) => r.path === "/api/v1/client/config").length, 2);
    assert.equal(server.requests.filter((r) => r.path === "/api/v1/create_session").length, sessions);
  });
});
