/**
 * The SDK's hand-written protobuf codec (src/internal/proto/) against the reference implementation of the
 * same messages (@bufbuild/protobuf, compiled from spec/tinker_public.proto): every message round-trips,
 * and the SDK's request bytes equal the reference encoder's.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  ArrayRecordSchema,
  BatchedTensorSchema,
  DType,
  ForwardBackwardOutputSchema,
  ForwardBackwardRequestSchema,
  SampleResponseSchema,
  SampledSequenceSchema,
  StopReason,
  TopkPromptLogprobsSchema,
} from "../generated/proto/tinker_public_pb.js";
import { decodeForwardBackwardOutput, encodeForwardBackwardRequest } from "../src/internal/proto/forward-backward.js";
import { decodeSampleResponse } from "../src/internal/proto/sample.js";
import { ProtoWireError } from "../src/internal/proto/wire.js";
import { InvalidArgumentError } from "../src/index.js";
import type { Datum } from "../src/training-client.js";

const le = (ctor: { new (a: number[]): ArrayBufferView }, values: number[]): Uint8Array => {
  const v = new ctor(values);
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
};
const i64 = (values: number[]): Uint8Array => le(BigInt64Array as never, values.map(BigInt) as never);

const datums: Datum[] = [
  {
    model_input: { chunks: [{ type: "encoded_text", tokens: [1, 2, 151935, 2 ** 31 - 1] }] },
    loss_fn_inputs: {
      target_tokens: { data: [2, 151935, 7, 2 ** 40], dtype: "int64", shape: [4] },
      weights: { data: [1, 0.5, 0, -2.25], dtype: "float32", shape: [4] },
    },
  },
  {
    model_input: {
      chunks: [
        { type: "encoded_text", tokens: [] },
        { type: "image", data: Buffer.from([0x89, 0x50, 0x4e, 0x47]).toString("base64"), format: "png", expected_tokens: 3 },
        { type: "dmel", dmel: Buffer.from("dmel-bytes").toString("base64") },
        { type: "image", data: "", format: "jpeg" },
      ],
    },
    loss_fn_inputs: {
      // sparse CSR 2×3: [[0, 5, 0], [7, 0, 0]]
      target_tokens: { data: [5, 7], dtype: "int64", shape: [2, 3], sparse_crow_indices: [0, 1, 2], sparse_col_indices: [1, 0] },
      advantages: { data: [-1, 3.5], dtype: "float32" },
      empty: { data: [], dtype: "float32" },
      neg: { data: [-1, -(2 ** 40)], dtype: "int64", shape: [2] },
    },
  },
];

test("encodeForwardBackwardRequest: the reference decoder reads every field back, and its encoder writes the same bytes", () => {
  const bytes = encodeForwardBackwardRequest({
    modelId: "sess-1:train:0",
    seqId: 7,
    data: datums,
    lossFn: "ppo",
    lossFnConfig: { clip_low_threshold: 0.8, clip_high_threshold: 1.2 },
    forwardOnly: true,
  });
  const msg = fromBinary(ForwardBackwardRequestSchema, bytes);
  assert.equal(msg.modelId, "sess-1:train:0");
  assert.equal(msg.seqId, 7);
  assert.equal(msg.lossFn, "ppo");
  assert.equal(msg.forwardOnly, true);
  assert.deepEqual(msg.lossFnConfig, { clip_low_threshold: 0.8, clip_high_threshold: 1.2 });
  assert.equal(msg.data.length, 2);
  const [d0, d1] = msg.data;
  const text = d0!.modelInput[0]!.chunk;
  assert.equal(text.case, "encodedText");
  assert.deepEqual([...new Int32Array(text.value!.tokens.slice().buffer)], [1, 2, 151935, 2 ** 31 - 1]);
  const tt = d0!.lossFnInputs["target_tokens"]!;
  assert.equal(tt.dtype, DType.DTYPE_INT64);
  assert.deepEqual(tt.shape, [4n]);
  assert.equal(tt.encoding.case, "dense");
  assert.deepEqual([...new BigInt64Array((tt.encoding.value as Uint8Array).slice().buffer)].map(Number), [2, 151935, 7, 2 ** 40]);
  const w = d0!.lossFnInputs["weights"]!;
  assert.equal(w.dtype, DType.DTYPE_FLOAT32);
  assert.deepEqual([...new Float32Array((w.encoding.value as Uint8Array).slice().buffer)], [1, 0.5, 0, -2.25]);
  assert.deepEqual(
    d1!.modelInput.map((c) => c.chunk.case),
    ["encodedText", "image", "dmel", "image"],
  );
  const img = d1!.modelInput[1]!.chunk.value as { data: Uint8Array; format: string; expectedTokens?: number };
  assert.deepEqual([...img.data], [0x89, 0x50, 0x4e, 0x47]);
  assert.equal(img.format, "png");
  assert.equal(img.expectedTokens, 3);
  assert.equal((d1!.modelInput[3]!.chunk.value as { expectedTokens?: number }).expectedTokens, undefined);
  assert.equal(Buffer.from((d1!.modelInput[2]!.chunk.value as { dmel: Uint8Array }).dmel).toString(), "dmel-bytes");
  const sparse = d1!.lossFnInputs["target_tokens"]!;
  assert.equal(sparse.encoding.case, "sparseCsr");
  const csr = sparse.encoding.value as { values: Uint8Array; crowIndices: Uint8Array; colIndices: Uint8Array };
  assert.deepEqual([...new BigInt64Array(csr.values.slice().buffer)].map(Number), [5, 7]);
  assert.deepEqual([...new BigInt64Array(csr.crowIndices.slice().buffer)].map(Number), [0, 1, 2]);
  assert.deepEqual([...new BigInt64Array(csr.colIndices.slice().buffer)].map(Number), [1, 0]);
  assert.deepEqual(sparse.shape, [2n, 3n]);
  assert.deepEqual(d1!.lossFnInputs["empty"]!.encoding, { case: "dense", value: new Uint8Array(0) });
  assert.deepEqual([...new BigInt64Array((d1!.lossFnInputs["neg"]!.encoding.value as Uint8Array).slice().buffer)].map(Number), [
    -1,
    -(2 ** 40),
  ]);
  // The reference encoder writes the same message to the same bytes.
  assert.deepEqual(Buffer.from(toBinary(ForwardBackwardRequestSchema, msg)), Buffer.from(bytes));
});

test("encodeForwardBackwardRequest: forward_only and loss_fn_config are omitted when not set", () => {
  const bytes = encodeForwardBackwardRequest({ modelId: "m", seqId: 1, data: [datums[0]!], lossFn: "cross_entropy" });
  const msg = fromBinary(ForwardBackwardRequestSchema, bytes);
  assert.equal(msg.forwardOnly, false);
  assert.deepEqual(msg.lossFnConfig, {});
  assert.deepEqual(Buffer.from(toBinary(ForwardBackwardRequestSchema, msg)), Buffer.from(bytes));
});

test("encodeForwardBackwardRequest: bad input is an InvalidArgumentError naming the field", () => {
  const enc =
    (data: unknown[], extra: Record<string, unknown> = {}) =>
    () =>
      encodeForwardBackwardRequest({ modelId: "m", seqId: 1, data: data as Datum[], lossFn: "cross_entropy", ...extra });
  const d = (over: Record<string, unknown>): unknown => ({ ...datums[0], loss_fn_inputs: { ...datums[0]!.loss_fn_inputs, ...over } });
  assert.throws(
    enc([d({ weights: { data: [1, "x", 1, 1], dtype: "float32" } })]),
    (e: unknown) => e instanceof InvalidArgumentError && /data\[0\]\.loss_fn_inputs\.weights\.data\[1\]/.test(e.message),
  );
  assert.throws(enc([d({ target_tokens: { data: [1, 2.5, 1, 1], dtype: "int64" } })]), /target_tokens\.data\[1\] must be a safe integer/);
  assert.throws(enc([d({ target_tokens: { data: [1, 2], dtype: "int32" } })]), /dtype must be "int64" or "float32"/);
  assert.throws(enc([d({ target_tokens: { data: [1, 2], dtype: "int64", shape: [3] } })]), /shape \[3\] holds 3 values, but data has 2/);
  assert.throws(
    enc([{ model_input: { chunks: [{ type: "encoded_text", tokens: [2 ** 31] }] }, loss_fn_inputs: {} }]),
    /chunks\[0\]\.tokens\[0\] must be an integer in the int32 range/,
  );
  assert.throws(
    enc([{ model_input: { chunks: [{ type: "image_asset_pointer", location: "s3://x" }] }, loss_fn_inputs: {} }]),
    /chunks\[0\]\.type "image_asset_pointer" cannot be sent/,
  );
  assert.throws(
    enc([{ model_input: { chunks: [{ type: "image", data: "!!", format: "png" }] }, loss_fn_inputs: {} }]),
    /data is not valid base64/,
  );
  assert.throws(
    enc([d({ t: { data: [1], dtype: "int64", shape: [1, 2], sparse_crow_indices: [0, 1] } })]),
    /needs both sparse_crow_indices and sparse_col_indices/,
  );
  assert.throws(enc([datums[0]], { seqId: 0 }), /seq_id must be an int32 ≥ 1/);
});

test("decodeForwardBackwardOutput: records, byte offsets, every dtype, trailing shapes, type after the last ':'", () => {
  const bf16 = (xs: number[]): Uint8Array => {
    const f = new Float32Array(xs);
    const u = new Uint32Array(f.buffer);
    return le(
      Uint16Array as never,
      [...u].map((x) => x >>> 16),
    );
  };
  const msg = create(ForwardBackwardOutputSchema, {
    lossFnOutputType: "tinker.losses:CrossEntropyOutput",
    metrics: { "loss:sum": 3.25, "ntokens:sum": 5 },
    lossFnOutputs: [
      create(ArrayRecordSchema, {
        typeTag: "x",
        numDatums: 2n,
        fields: {
          logprobs: create(BatchedTensorSchema, {
            data: le(Float32Array as never, [-1, -2, -3]),
            offsets: i64([0, 8, 12]),
            dtype: DType.DTYPE_FLOAT32,
          }),
          ids: create(BatchedTensorSchema, {
            data: le(Int32Array as never, [4, -5, 6]),
            offsets: i64([0, 4, 12]),
            dtype: DType.DTYPE_INT32,
          }),
        },
      }),
      create(ArrayRecordSchema, {
        numDatums: 1n,
        fields: {
          logprobs: create(BatchedTensorSchema, {
            data: bf16([1.5, -0.25, 2, 3]),
            offsets: i64([0, 8]),
            dtype: DType.DTYPE_BFLOAT16,
            trailingShape: [2n],
          }),
          ids: create(BatchedTensorSchema, { data: i64([2 ** 40, -7]), offsets: i64([0, 16]), dtype: DType.DTYPE_INT64 }),
        },
      }),
    ],
  });
  const out = decodeForwardBackwardOutput(toBinary(ForwardBackwardOutputSchema, msg));
  assert.equal(out.loss_fn_output_type, "CrossEntropyOutput");
  assert.deepEqual(out.metrics, { "loss:sum": 3.25, "ntokens:sum": 5 });
  assert.deepEqual(out.loss_fn_outputs, [
    { logprobs: { data: [-1, -2], dtype: "float32", shape: [2] }, ids: { data: [4], dtype: "int64", shape: [1] } },
    { logprobs: { data: [-3], dtype: "float32", shape: [1] }, ids: { data: [-5, 6], dtype: "int64", shape: [2] } },
    { logprobs: { data: [1.5, -0.25, 2, 3], dtype: "float32", shape: [2, 2] }, ids: { data: [2 ** 40, -7], dtype: "int64", shape: [2] } },
  ]);
});

test("decodeForwardBackwardOutput: no records keeps the type whole ('' → ArrayRecord); num_datums 0 falls back to the first field", () => {
  const empty = decodeForwardBackwardOutput(
    toBinary(ForwardBackwardOutputSchema, create(ForwardBackwardOutputSchema, { metrics: { "loss:sum": 0 } })),
  );
  assert.deepEqual(empty, { loss_fn_output_type: "ArrayRecord", loss_fn_outputs: [], metrics: { "loss:sum": 0 } });
  const named = decodeForwardBackwardOutput(
    toBinary(ForwardBackwardOutputSchema, create(ForwardBackwardOutputSchema, { lossFnOutputType: "a:b" })),
  );
  assert.equal(named.loss_fn_output_type, "a:b");
  const noCount = create(ForwardBackwardOutputSchema, {
    lossFnOutputs: [
      create(ArrayRecordSchema, {
        fields: {
          lp: create(BatchedTensorSchema, { data: le(Float32Array as never, [1, 2]), offsets: i64([0, 4, 8]), dtype: DType.DTYPE_FLOAT32 }),
        },
      }),
    ],
  });
  assert.equal(decodeForwardBackwardOutput(toBinary(ForwardBackwardOutputSchema, noCount)).loss_fn_outputs.length, 2);
  // num_datums without fields (a server that stripped every field): that many empty outputs.
  const stripped = create(ForwardBackwardOutputSchema, { lossFnOutputs: [create(ArrayRecordSchema, { numDatums: 3n })] });
  assert.deepEqual(decodeForwardBackwardOutput(toBinary(ForwardBackwardOutputSchema, stripped)).loss_fn_outputs, [{}, {}, {}]);
});

test("decodeForwardBackwardOutput: malformed bytes fail with a ProtoWireError naming the problem", () => {
  const withTensor = (bt: Parameters<typeof create<typeof BatchedTensorSchema>>[1]) =>
    toBinary(
      ForwardBackwardOutputSchema,
      create(ForwardBackwardOutputSchema, {
        lossFnOutputs: [create(ArrayRecordSchema, { numDatums: 1n, fields: { lp: create(BatchedTensorSchema, bt) } })],
      }),
    );
  assert.throws(
    () => decodeForwardBackwardOutput(withTensor({ data: new Uint8Array(4), offsets: i64([0, 4]) })),
    /dtype 0 is not supported/,
  );
  assert.throws(
    () => decodeForwardBackwardOutput(withTensor({ data: new Uint8Array(4), offsets: i64([0, 8]), dtype: DType.DTYPE_FLOAT32 })),
    /offsets\[1\] = 8 is outside the 4 data bytes/,
  );
  assert.throws(
    () => decodeForwardBackwardOutput(withTensor({ data: new Uint8Array(8), offsets: i64([0, 2]), dtype: DType.DTYPE_FLOAT32 })),
    /not a multiple of the 4-byte dtype/,
  );
  assert.throws(
    () => decodeForwardBackwardOutput(withTensor({ data: new Uint8Array(8), offsets: new Uint8Array(5), dtype: DType.DTYPE_FLOAT32 })),
    /offsets hold 5 bytes/,
  );
  assert.throws(
    () => decodeForwardBackwardOutput(Uint8Array.from([0x12, 0x05, 0x01])),
    (e: unknown) => e instanceof ProtoWireError && /runs past the end/.test(e.message),
  );
  assert.throws(() => decodeForwardBackwardOutput(Uint8Array.from([0x08, 0x80])), /truncated varint/);
});

test("decodeSampleResponse: stop reasons, int32 tokens, logprobs, prompt logprobs NaN → null, top-k rows", () => {
  const msg = create(SampleResponseSchema, {
    sequences: [
      create(SampledSequenceSchema, {
        stopReason: StopReason.STOP,
        tokens: le(Int32Array as never, [5, 151645]),
        logprobs: le(Float32Array as never, [-0.5, -1]),
      }),
      create(SampledSequenceSchema, { stopReason: StopReason.LENGTH, tokens: le(Int32Array as never, [9]) }),
      create(SampledSequenceSchema, { stopReason: StopReason.STOP, tokens: new Uint8Array(0), logprobs: new Uint8Array(0) }),
    ],
    promptLogprobs: le(Float32Array as never, [NaN, -2.5, -0.125]),
    topkPromptLogprobs: create(TopkPromptLogprobsSchema, {
      k: 3,
      promptLength: 3,
      tokenIds: le(Int32Array as never, [0, 0, 0, 7, 0, 0, 8, 0, 9]),
      logprobs: le(Float32Array as never, [-99999, -99999, -99999, -0.5, -99999, -99999, -0.25, -99999, -3]),
    }),
    promptCacheHitTokens: 4,
  });
  const res = decodeSampleResponse(toBinary(SampleResponseSchema, msg));
  assert.deepEqual(res, {
    sequences: [
      { stop_reason: "stop", tokens: [5, 151645], logprobs: [-0.5, -1] },
      { stop_reason: "length", tokens: [9], logprobs: null },
      { stop_reason: "stop", tokens: [], logprobs: null },
    ],
    prompt_logprobs: [null, -2.5, -0.125],
    topk_prompt_logprobs: [
      null,
      [[7, -0.5]],
      [
        [8, -0.25],
        [0, -99999],
        [9, -3],
      ],
    ],
    prompt_cache_hit_tokens: 4,
  });
  const bare = decodeSampleResponse(
    toBinary(
      SampleResponseSchema,
      create(SampleResponseSchema, { topkPromptLogprobs: create(TopkPromptLogprobsSchema, { k: 0, promptLength: 2 }) }),
    ),
  );
  assert.deepEqual(bare, { sequences: [], prompt_logprobs: null, topk_prompt_logprobs: null, prompt_cache_hit_tokens: 0 });
  const badStop = toBinary(
    SampleResponseSchema,
    create(SampleResponseSchema, { sequences: [create(SampledSequenceSchema, { stopReason: 2 as StopReason })] }),
  );
  assert.throws(() => decodeSampleResponse(badStop), /stop_reason 2 is unknown/);
  const badTopk = toBinary(
    SampleResponseSchema,
    create(SampleResponseSchema, {
      topkPromptLogprobs: create(TopkPromptLogprobsSchema, { k: 2, promptLength: 2, tokenIds: new Uint8Array(8) }),
    }),
  );
  assert.throws(() => decodeSampleResponse(badTopk), /needs 16 bytes each/);
});
