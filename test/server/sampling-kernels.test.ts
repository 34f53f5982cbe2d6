/**
 * Sampling kernels of the tiny model (src/server/model/sampling.ts), without HTTP: prompt logprobs against
 * forward, top-k prompt logprobs, seeded determinism, greedy, stop/length, and sample frequencies against the
 * exact distribution for temperature, top_k and top_p.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  createTinyModel,
  loadTinyModel,
  ModelInputError,
  nextTokenLogprobs,
  promptLogprobs,
  sample,
  topkPromptLogprobs,
  type Datum,
  type TinyLoraModel,
  type TinyModelOptions,
} from "../../src/server/model/index.js";

const V = 1000;
const OPTS: TinyModelOptions = {
  baseModel: "sampling-test-base",
  rank: 4,
  trainAttn: true,
  trainMlp: true,
  trainUnembed: true,
  vocabSize: V,
};
const ADAM = { learning_rate: 0.05, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0, grad_clip_norm: 0 };
const PROMPT = [1, 2, 3];

const ce = (tokens: number[], targets: number[], weights: number[], shape?: number[]): Datum => ({
  model_input: { chunks: [{ type: "encoded_text", tokens }] },
  loss_fn_inputs: {
    target_tokens: { data: targets, dtype: "int64", shape: shape ?? [targets.length] },
    weights: { data: weights, dtype: "float32", shape: shape ?? [weights.length] },
  },
});

/**
 * A model trained towards a mixture of a few ids after PROMPT (weights 3:2:1:1). The factored output
 * p(class)·p(slot) spreads it over the products of those classes and slots: a peaked, multi-modal distribution.
 */
function peakedModel(): TinyLoraModel {
  const model = createTinyModel(OPTS);
  const ids = [10, 500, 999, 37];
  const w = [3, 2, 1, 1];
  // (N, K) cross_entropy: only the last position has weighted targets.
  const data = [ce(PROMPT, [2, 2, 2, 2, 3, 3, 3, 3, ...ids], [0, 0, 0, 0, 0, 0, 0, 0, ...w], [3, 4])];
  for (let i = 0; i < 30; i++) {
    model.forwardBackward(data, "cross_entropy");
    model.optimStep(ADAM);
  }
  return model;
}

function argmax(lp: Float64Array): number {
  let best = 0;
  for (let i = 1; i < lp.length; i++) if (lp[i]! > lp[best]!) best = i;
  return best;
}

/** The exact sampling distribution after `prefix` under temperature / top_k / top_p, from nextTokenLogprobs. */
function exactDistribution(model: TinyLoraModel, prefix: number[], t: number, topK: number, topP: number): Map<number, number> {
  const lp = nextTokenLogprobs(model, prefix);
  let entries = [...lp].map((v, id) => [id, v / t] as [number, number]).sort((a, b) => b[1] - a[1] || a[0] - b[0]);
  if (topK > 0) entries = entries.slice(0, topK);
  const max = entries[0]![1];
  let probs = entries.map(([id, v]) => [id, Math.exp(v - max)] as [number, number]);
  let total = probs.reduce((s, [, p]) => s + p, 0);
  if (topP < 1) {
    let acc = 0;
    const kept: Array<[number, number]> = [];
    for (const e of probs) {
      kept.push(e);
      acc += e[1];
      if (acc >= topP * total) break;
    }
    probs = kept;
    total = acc;
  }
  return new Map(probs.map(([id, p]) => [id, p / total]));
}

test("prompt logprobs equal forward's logprobs for the same tokens, also after a save/load round trip", () => {
  for (const opts of [OPTS, { ...OPTS, baseModel: "Qwen/Qwen3-8B", vocabSize: undefined }]) {
    const model = createTinyModel(opts);
    const n = model.config.vocabSize;
    const seq = [n - 1, 7, 123, n - 2, 7, 0, 42];
    const data = [
      ce(
        seq,
        seq,
        seq.map(() => 1),
      ),
    ].map((d) => ({ ...d, model_input: { chunks: [{ type: "encoded_text" as const, tokens: seq.slice(0, -1) }] } }));
    data[0]!.loss_fn_inputs.target_tokens = { data: seq.slice(1), dtype: "int64" };
    data[0]!.loss_fn_inputs.weights = { data: seq.slice(1).map(() => 1), dtype: "float32" };
    for (let i = 0; i < 3; i++) {
      model.forwardBackward(data, "cross_entropy");
      model.optimStep(ADAM);
    }
    const forward = model.forward(data, "cross_entropy").loss_fn_outputs[0]!.logprobs!.data;
    for (const m of [model, loadTinyModel(model.exportWeights())]) {
      const prompt = promptLogprobs(m, seq);
      assert.equal(prompt[0], null);
      assert.equal(prompt.length, seq.length);
      for (let i = 1; i < seq.length; i++) {
        assert.equal(Math.fround(prompt[i]!), forward[i - 1], `position ${i}`);
        assert.equal(
          prompt[i],
          nextTokenLogprobs(m, seq.slice(0, i))[seq[i]!],
          `position ${i}: same float64 as the full-vocabulary kernel`,
        );
      }
    }
  }
});

test("top-k prompt logprobs are the k most likely ids of the full distribution", () => {
  const model = peakedModel();
  const seq = [...PROMPT, 10, 4];
  const top = topkPromptLogprobs(model, seq, 5);
  assert.equal(top[0], null);
  for (let i = 1; i < seq.length; i++) {
    const lp = nextTokenLogprobs(model, seq.slice(0, i));
    const expected = [...lp]
      .map((v, id) => [id, v] as [number, number])
      .sort((a, b) => b[1] - a[1] || a[0] - b[0])
      .slice(0, 5);
    assert.deepEqual(top[i], expected, `position ${i}`);
  }
  assert.equal(top[3]![0]![0], 10, "the most weighted training target is the most likely");
});

test("the same seed and request give the same tokens; the stream depends only on seed and prompt", () => {
  const a = createTinyModel({ ...OPTS, seed: 3 });
  const b = createTinyModel({ ...OPTS, seed: 3 });
  const opts = { maxTokens: 12, seed: 1234, stopTokenIds: [] };
  const s1 = sample(a, PROMPT, 3, opts);
  assert.deepEqual(sample(b, PROMPT, 3, opts), s1);
  assert.deepEqual(sample(a, PROMPT, 3, { ...opts, seed: 1234n }), s1, "bigint seed = number seed");
  assert.notDeepEqual(
    sample(a, PROMPT, 3, { ...opts, seed: 1235 }).map((s) => s.tokens),
    s1.map((s) => s.tokens),
  );
  assert.notDeepEqual(s1[0]!.tokens, s1[1]!.tokens, "samples of one request differ");
  // a longer max_tokens extends the samples without changing their prefix
  const longer = sample(a, PROMPT, 3, { ...opts, maxTokens: 20 });
  for (let i = 0; i < 3; i++) assert.deepEqual(longer[i]!.tokens.slice(0, 12), s1[i]!.tokens);
  // each logprob is the model's own log p(token | prefix)
  const seq = [...PROMPT, ...s1[0]!.tokens];
  const pl = promptLogprobs(a, seq);
  assert.deepEqual(s1[0]!.logprobs, pl.slice(PROMPT.length));
});

test("greedy (top_k 1 or temperature 0) picks the argmax every step; max_tokens gives length, a stop token gives stop", () => {
  const model = peakedModel();
  const greedy = sample(model, PROMPT, 3, { maxTokens: 6, topK: 1, seed: 1, stopTokenIds: [] });
  const cold = sample(model, PROMPT, 2, { maxTokens: 6, temperature: 0, seed: 2, stopTokenIds: [] });
  for (const s of [...greedy, ...cold]) {
    assert.deepEqual(s.tokens, greedy[0]!.tokens);
    assert.equal(s.stopReason, "length");
    assert.equal(s.tokens.length, 6);
  }
  const seq = [...PROMPT];
  for (const tok of greedy[0]!.tokens) {
    assert.equal(tok, argmax(nextTokenLogprobs(model, seq)));
    seq.push(tok);
  }
  assert.equal(greedy[0]!.tokens[0], 10);
  const stopAt = greedy[0]!.tokens[2]!;
  const stopped = sample(model, PROMPT, 1, { maxTokens: 6, topK: 1, seed: 1, stopTokenIds: [stopAt] })[0]!;
  assert.equal(stopped.stopReason, "stop");
  assert.deepEqual(stopped.tokens, greedy[0]!.tokens.slice(0, greedy[0]!.tokens.indexOf(stopAt) + 1), "the stop token is included");
});

test("without stop tokens a sample ends at the base model's end-of-sequence id (Qwen3: 151645)", () => {
  const model = createTinyModel({ baseModel: "Qwen/Qwen3-8B", rank: 4, trainAttn: true, trainMlp: true, trainUnembed: true });
  const seq = [151_644, 872, 100_000, 151_645];
  const data = [ce(seq.slice(0, -1), seq.slice(1), [1, 1, 1])];
  for (let i = 0; i < 30; i++) {
    model.forwardBackward(data, "cross_entropy");
    model.optimStep({ ...ADAM, learning_rate: 0.02 });
  }
  const s = sample(model, seq.slice(0, 2), 1, { maxTokens: 10, temperature: 0, seed: 0 })[0]!;
  assert.deepEqual(s.tokens, [100_000, 151_645]);
  assert.equal(s.stopReason, "stop");
  const none = sample(model, seq.slice(0, 2), 1, { maxTokens: 10, temperature: 0, seed: 0, stopTokenIds: [] })[0]!;
  assert.equal(none.stopReason, "length");
  assert.equal(none.tokens.length, 10);
});

test("sample frequencies match the exact distribution under temperature, top_k and top_p (4000 draws, 4-sigma tolerance)", () => {
  const model = peakedModel();
  const N = 4000;
  const cases = [
    { temperature: 1, topK: -1, topP: 1 },
    { temperature: 0.7, topK: -1, topP: 1 },
    { temperature: 1.5, topK: 3, topP: 1 },
    { temperature: 1, topK: -1, topP: 0.6 },
    { temperature: 1, topK: 50, topP: 0.9 },
  ];
  for (const [ci, c] of cases.entries()) {
    const exact = exactDistribution(model, PROMPT, c.temperature, c.topK, c.topP);
    const counts = new Map<number, number>();
    for (const s of sample(model, PROMPT, N, { maxTokens: 1, seed: 77 + ci, ...c })) {
      const tok = s.tokens[0]!;
      assert.ok(exact.has(tok), `case ${ci}: sampled ${tok}, which the truncation excludes`);
      counts.set(tok, (counts.get(tok) ?? 0) + 1);
    }
    let rest = 0;
    let restCount = N;
    for (const [id, p] of exact) {
      if (p < 0.01) {
        rest += p;
        continue;
      }
      const got = (counts.get(id) ?? 0) / N;
      restCount -= counts.get(id) ?? 0;
      const tol = 4 * Math.sqrt((p * (1 - p)) / N) + 1e-3;
      assert.ok(Math.abs(got - p) <= tol, `case ${ci} id ${id}: frequency ${got} vs p ${p} (tolerance ${tol})`);
    }
    const tolRest = 4 * Math.sqrt((rest * (1 - rest)) / N) + 1e-3;
    assert.ok(Math.abs(restCount / N - rest) <= tolRest, `case ${ci}: rest ${restCount / N} vs ${rest}`);
  }
});

test("sampling inputs are checked with errors naming the field", () => {
  const model = createTinyModel(OPTS);
  const fails = (fn: () => unknown, message: RegExp) =>
    assert.throws(fn, (err: unknown) => err instanceof ModelInputError && message.test(err.message));
  fails(() => sample(model, [], 1, { maxTokens: 1, seed: 0 }), /^prompt: must contain at least one token/);
  fails(() => sample(model, [1, V], 1, { maxTokens: 1, seed: 0 }), /^prompt\[1\]: token 1000 is not an integer in \[0, 1000\)/);
  fails(() => sample(model, [1], 0, { maxTokens: 1, seed: 0 }), /^num_samples: must be an integer >= 1/);
  fails(() => sample(model, [1], 1, { maxTokens: 0, seed: 0 }), /^sampling_params\.max_tokens: must be an integer >= 1/);
  fails(() => sample(model, [1], 1, { maxTokens: 1, topP: 0, seed: 0 }), /^sampling_params\.top_p: must be in \(0, 1\]/);
  fails(() => sample(model, [1], 1, { maxTokens: 1, topP: 1.5, seed: 0 }), /^sampling_params\.top_p/);
  fails(() => sample(model, [1], 1, { maxTokens: 1, topK: -2, seed: 0 }), /^sampling_params\.top_k/);
  fails(() => sample(model, [1], 1, { maxTokens: 1, temperature: -1, seed: 0 }), /^sampling_params\.temperature/);
  fails(() => sample(model, [1], 1, { maxTokens: 1, seed: 0.5 }), /^sampling_params\.seed/);
  fails(() => topkPromptLogprobs(model, [1, 2], 0), /^topk_prompt_logprobs: must be an integer >= 1/);
});
