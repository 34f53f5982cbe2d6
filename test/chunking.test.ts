/**
 * The pure parts of chunking (PROTOCOL §10.2): the byte estimate, the split rule, and the combination of chunk
 * results by metric suffix, checked against values CPython and numpy computed
 * (test/fixtures/chunk-combine-vectors.py), plus the client config's defaults.
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { crossEntropyDatum, rlDatum, type Datum, type ForwardBackwardOutput } from "../src/index.js";
import {
  combineOutputs,
  estimateDatumBytes,
  hashUnordered,
  MetricCombineError,
  numpySum,
  pythonTupleHash,
  splitIntoChunks,
} from "../src/internal/chunking.js";
import { ByteBudget, ClientConfigSchema, DEFAULT_CLIENT_CONFIG } from "../src/internal/client-config.js";

const vectors = JSON.parse(readFileSync(new URL("./fixtures/chunk-combine-vectors.json", import.meta.url), "utf8")) as {
  hash: { values: string[]; hash: string }[];
  hash_unordered: { values: number[]; hash: string }[];
  sum: { xs: number[]; sum: number }[];
  average: { xs: number[]; weights: number[]; mean: number; slack: number }[];
};

function out(metrics: Record<string, number>, outputs = 1, type = "ArrayRecord"): ForwardBackwardOutput {
  return {
    loss_fn_output_type: type,
    loss_fn_outputs: Array.from({ length: outputs }, (_, i) => ({ logprobs: { data: [i], dtype: "float32" } })),
    metrics,
  };
}

describe("estimate and split", () => {
  test("the estimate counts 4 bytes per token, 8 per int64 and 4 per float32 element, raw bytes of images and dmel, 8 per CSR index", () => {
    assert.equal(estimateDatumBytes(crossEntropyDatum([1, 2, 3, 4])), 3 * 4 + 3 * 8 + 3 * 4);
    assert.equal(estimateDatumBytes(rlDatum([1, 2, 3], { logprobs: [0, 0, 0], advantages: [0, 1, 1] })), 2 * 4 + 2 * 8 + 2 * 4 + 2 * 4);
    const mixed = {
      model_input: {
        chunks: [
          { type: "encoded_text", tokens: [1, 2] },
          { type: "image", data: new Uint8Array(100), format: "png" },
          { type: "dmel", dmel: Buffer.alloc(30).toString("base64") },
        ],
      },
      loss_fn_inputs: {
        target_tokens: { data: [5, 6], dtype: "int64", shape: [2, 3], sparse_crow_indices: [0, 1, 2], sparse_col_indices: [0, 2] },
      },
    } as unknown as Datum;
    assert.equal(estimateDatumBytes(mixed), 2 * 4 + 100 + 30 + (2 * 8 + 8 * 3 + 8 * 2));
  });

  test("chunks close at fwdbwd_max_chunk_len datums or before exceeding the byte limit; an oversized datum goes alone", () => {
    const d = (n: number): Datum => crossEntropyDatum(Array.from({ length: n + 1 }, (_, i) => i)); // 16n bytes
    const sizes = (data: Datum[], maxChunkLen: number, maxChunkBytes: number): number[][] =>
      splitIntoChunks(data, { maxChunkLen, maxChunkBytes }).map((c) =>
        c.data.map((x) => (x.model_input.chunks[0] as { tokens: number[] }).tokens.length),
      );
    assert.deepEqual(sizes([d(1), d(1), d(1), d(1), d(1)], 2, 1e9), [[1, 1], [1, 1], [1]]);
    assert.deepEqual(sizes([d(5), d(5), d(1), d(20), d(1)], 100, 160), [[5, 5], [1], [20], [1]]);
    assert.deepEqual(sizes([d(5), d(5)], 100, 160), [[5, 5]], "exactly at the limit stays in one chunk");
    assert.deepEqual(sizes([d(50)], 1, 1), [[50]]);
    assert.deepEqual(splitIntoChunks([], { maxChunkLen: 2, maxChunkBytes: 10 }), []);
    assert.deepEqual(
      splitIntoChunks([d(3), d(2)], { maxChunkLen: 5, maxChunkBytes: 1e6 }).map((c) => c.bytes),
      [80],
    );
  });
});

describe("combining chunk results as the SDK does", () => {
  test("CPython's hash of a tuple of ints, bit for bit", () => {
    for (const v of vectors.hash) assert.equal(String(pythonTupleHash(v.values.map(BigInt))), v.hash, `hash((${v.values.join(", ")}))`);
    for (const v of vectors.hash_unordered) assert.equal(String(hashUnordered(v.values)), v.hash, `hash_unordered(${v.values.join(", ")})`);
  });

  test("sum uses numpy's pairwise summation; mean and slack are weighted by outputs per chunk, bit for bit", () => {
    for (const v of vectors.sum) assert.ok(Object.is(numpySum(v.xs), v.sum), `np.sum of ${v.xs.length}: ${numpySum(v.xs)} vs ${v.sum}`);
    for (const v of vectors.average) {
      const combined = combineOutputs(v.xs.map((x, i) => out({ "m:mean": x, "s:slack": x, "t:sum": x }, v.weights[i])));
      assert.ok(Object.is(combined.metrics["m:mean"], v.mean), `np.average of ${v.xs.length}`);
      assert.ok(Object.is(combined.metrics["s:slack"], v.slack), `slack of ${v.xs.length}`);
    }
  });

  test("every reduction, key rules, outputs in order, chunk 1's type", () => {
    const a = out(
      {
        "loss:sum": 1.5,
        "lo:min": 3,
        "hi:max": 3,
        "acc:mean": 1,
        "gap:slack": 1,
        "h:hash_unordered": 7.9,
        "id:unique": 10,
        "new:median": 1,
        "only1:sum": 1,
      },
      3,
      "A",
    );
    const b = out(
      { "loss:sum": 2.25, "lo:min": -1, "hi:max": 9, "acc:mean": 0, "gap:slack": 5, "h:hash_unordered": -2.5, "id:unique": 11 },
      1,
      "B",
    );
    const c = out(
      { "loss:sum": 0.25, "lo:min": 0, "hi:max": 4, "acc:mean": 0.5, "gap:slack": 2, "h:hash_unordered": 3, "id:unique": 12 },
      2,
      "C",
    );
    const combined = combineOutputs([a, b, c]);
    assert.equal(combined.loss_fn_output_type, "A");
    assert.deepEqual(
      combined.loss_fn_outputs.map((o) => o["logprobs"]?.data[0]),
      [0, 1, 2, 0, 0, 1],
    );
    assert.deepEqual(combined.metrics, {
      "loss:sum": 4,
      "lo:min": -1,
      "hi:max": 9,
      "acc:mean": (3 * 1 + 0 + 2 * 0.5) / 6,
      "gap:slack": 5 - (3 * 1 + 5 + 2 * 2) / 6,
      "h:hash_unordered": Number(pythonTupleHash([-2n, 3n, 7n])),
      "id:unique": 10,
      "id:unique_1": 11,
      "id:unique_2": 12,
    });
    assert.throws(() => combineOutputs([out({ loss: 1 })]), MetricCombineError, "no colon");
    assert.throws(() => combineOutputs([out({ "a:b:sum": 1 })]), MetricCombineError, "two colons");
    assert.throws(() => combineOutputs([out({ "acc:mean": 1 }, 0), out({ "acc:mean": 1 }, 0)]), MetricCombineError, "mean over no outputs");
    assert.deepEqual(combineOutputs([out({ "x:sum": 2 }, 1)]).metrics, { "x:sum": 2 }, "one chunk is combined too");
  });

  test("a result without metrics (optional on the wire, as in the SDK) gives metrics {}", () => {
    const bare = { loss_fn_output_type: "ArrayRecord", loss_fn_outputs: [{}, {}] };
    assert.deepEqual(combineOutputs([bare]).metrics, {});
    assert.deepEqual(combineOutputs([bare, out({ "loss:sum": 1 }, 1)]).metrics, {}, "a key missing from a chunk is dropped");
    assert.equal(combineOutputs([bare, bare]).loss_fn_outputs.length, 4);
  });
});

describe("client config", () => {
  test("every field is defaulted, unknown keys are ignored, wrong types are refused", () => {
    assert.equal(DEFAULT_CLIENT_CONFIG.fwdbwd_max_chunk_len, 1024);
    assert.equal(DEFAULT_CLIENT_CONFIG.fwdbwd_max_chunk_bytes_count, 5_000_000);
    assert.equal(DEFAULT_CLIENT_CONFIG.fwdbwd_dispatch_bytes_semaphore_size, 50_000_000);
    assert.equal(DEFAULT_CLIENT_CONFIG.parallel_fwdbwd_chunks, true);
    assert.equal(DEFAULT_CLIENT_CONFIG.create_model_via_load_weights, false);
    assert.equal(DEFAULT_CLIENT_CONFIG.use_pyqwest_transport, true);
    const parsed = ClientConfigSchema.parse({ fwdbwd_max_chunk_len: 8, brand_new: { x: 1 }, parallel_fwdbwd_chunks: null });
    assert.equal(parsed.fwdbwd_max_chunk_len, 8);
    assert.equal(parsed.parallel_fwdbwd_chunks, true);
    assert.ok(!("brand_new" in parsed));
    assert.equal(ClientConfigSchema.safeParse({ fwdbwd_max_chunk_len: 0 }).success, false);
    assert.equal(ClientConfigSchema.safeParse({ parallel_fwdbwd_chunks: "yes" }).success, false);
  });

  test("the byte budget admits while it is ≥ 0, then subtracts (one oversized submit still goes)", async () => {
    const budget = new ByteBudget(100);
    const order: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const big = budget.run(150, async () => {
      order.push("big");
      await gate;
    });
    const small = budget.run(10, async () => {
      order.push("small");
    });
    await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(order, ["big"], "the budget is negative: the next submit waits");
    assert.equal(budget.available, -50);
    release();
    await Promise.all([big, small]);
    assert.deepEqual(order, ["big", "small"]);
    assert.equal(budget.available, 100);
  });
});
