/**
 * Honest numbers: what sampling reports agrees with what training computes, and what it draws agrees with what it
 * reports (fixed seeds; the statistical test states its tolerance).
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { crossEntropyDatum, ServiceClient, startLocalServer, type LocalServer, type TrainingClient } from "../src/index.js";
import { ADAM, BASE_MODEL } from "./helpers/training.js";

/** A sequence of real-sized Qwen3 ids (a chat turn), ending with <|im_end|>. */
const SEQUENCE = [151644, 872, 198, 9707, 11, 1246, 525, 498, 30, 151645];
const EOS = 151645;

async function train(
  training: TrainingClient,
  data: ReturnType<typeof crossEntropyDatum>[],
  steps: number,
  lr = ADAM.learning_rate,
): Promise<void> {
  for (let i = 0; i < steps; i++) {
    const fb = training.forwardBackward(data, "cross_entropy");
    const step = training.optimStep({ ...ADAM, learning_rate: lr });
    await fb;
    await step;
  }
}

describe("sampling numbers", () => {
  let server: LocalServer;
  let service: ServiceClient;

  before(async () => {
    server = await startLocalServer();
    service = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey });
  });

  after(async () => {
    await service.close();
    await server.close();
  });

  test("prompt logprobs of a sampler checkpoint equal the logprobs forward returns on the training model it was saved from", async () => {
    const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 8, seed: 3 });
    await train(training, [crossEntropyDatum([5, 6, 7, 8, 9, 10])], 3);
    const { path } = await training.saveWeightsForSampler("fwd-check");
    const sampler = await service.createSamplingClient({ modelPath: path });
    const tokens = [151644, 872, 198, 40, 1079, 264, 9396, 13];
    const lps = await sampler.computeLogprobs(tokens);
    const fwd = await training.forward([crossEntropyDatum(tokens)], "cross_entropy");
    const expected = fwd.loss_fn_outputs[0]!["logprobs"]!.data as number[];
    assert.equal(lps[0], null);
    assert.deepEqual(lps.slice(1), expected);
    // and the same through the unnamed save
    const direct = await training.saveWeightsAndGetSamplingClient();
    assert.deepEqual((await direct.computeLogprobs(tokens)).slice(1), expected);
    // a base-model sampler differs from the trained one
    const base = await service.createSamplingClient({ baseModel: BASE_MODEL });
    assert.notDeepEqual((await base.computeLogprobs(tokens)).slice(1), expected);
  });

  test("top_k 1 is greedy: every sample the same, each token the argmax after its prefix", async () => {
    const sampler = await service.createSamplingClient({ baseModel: BASE_MODEL });
    const prompt = [151644, 872, 198];
    const res = await sampler.sample(prompt, 4, { max_tokens: 6, top_k: 1, temperature: 1.3 });
    const first = res.sequences[0]!;
    for (const s of res.sequences) assert.deepEqual(s.tokens, first.tokens);
    const full = [...prompt, ...first.tokens];
    const scored = await sampler.sample(full, 1, { max_tokens: 1 }, { topkPromptLogprobs: 1 });
    assert.equal(scored.prompt_logprobs, null); // top-k without includePromptLogprobs: no prompt logprobs
    first.tokens.forEach((t, j) => {
      const row = scored.topk_prompt_logprobs![prompt.length + j]!;
      assert.equal(row[0]![0], t, `token ${j} is not the argmax`);
      assert.equal(first.logprobs![j], row[0]![1]);
    });
  });

  test("frequencies of a few thousand one-token samples match computeLogprobs (chi-square, 3 degrees of freedom, below 16.27 = the 0.999 quantile; fixed seeds)", async () => {
    const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 8, seed: 1 });
    const prompt = [100, 200];
    // Three continuations in one output class (ids 1000..1002 share the class of the factored softmax), so the
    // model can put most of its mass on them, in unequal shares (weights 3 : 2 : 1).
    const targets = [1000, 1001, 1002];
    const data = [
      crossEntropyDatum([...prompt, 1000], { weights: [0, 3] }),
      crossEntropyDatum([...prompt, 1001], { weights: [0, 2] }),
      crossEntropyDatum([...prompt, 1002], { weights: [0, 1] }),
    ];
    await train(training, data, 25);
    const sampler = await training.saveWeightsAndGetSamplingClient();
    const p = await Promise.all(targets.map(async (t) => Math.exp((await sampler.computeLogprobs([...prompt, t]))[2]!)));
    const pOther = 1 - p.reduce((a, b) => a + b, 0);
    assert.ok(
      p.every((x) => x > 0.05),
      `probabilities ${p}`,
    );
    const N = 4000;
    const counts = [0, 0, 0, 0];
    const results = await Promise.all([0, 1, 2, 3].map((i) => sampler.sample(prompt, N / 4, { max_tokens: 1, seed: 7000 + i })));
    for (const r of results) {
      for (const s of r.sequences) {
        const k = targets.indexOf(s.tokens[0]!);
        counts[k === -1 ? 3 : k]!++;
      }
    }
    const probs = [...p, pOther];
    let chi2 = 0;
    probs.forEach((q, i) => {
      const e = q * N;
      if (e >= 5) chi2 += (counts[i]! - e) ** 2 / e;
      else assert.ok(counts[i]! <= 5 + 4 * Math.sqrt(5), `bin ${i}: ${counts[i]} draws for expectation ${e}`);
    });
    assert.ok(chi2 < 16.27, `chi-square ${chi2.toFixed(2)} for counts ${counts} vs probabilities ${probs.map((q) => q.toFixed(4))}`);
    // a sampled token's reported logprob is the model's own log p (temperature 1)
    const one = results[0]!.sequences.find((s) => s.tokens[0] === 1000)!;
    assert.ok(Math.abs(Math.exp(one.logprobs![0]!) - p[0]!) < 1e-6);
  });

  test("a model trained a few dozen steps on one sequence of real-sized ids reproduces it under greedy sampling and stops at <|im_end|>", async () => {
    const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 16, seed: 2 });
    await train(training, [crossEntropyDatum(SEQUENCE)], 40);
    const sampler = await training.saveWeightsAndGetSamplingClient();
    const res = await sampler.sample(SEQUENCE.slice(0, 2), 2, { max_tokens: 32, top_k: 1 });
    for (const s of res.sequences) {
      assert.deepEqual(s.tokens, SEQUENCE.slice(2));
      assert.equal(s.stop_reason, "stop"); // the base model's EOS ended it (no `stop` given), and it is included
      assert.equal(s.tokens.at(-1), EOS);
    }
    // max_tokens → "length"; a stop token → "stop", the stop token included
    const short = await sampler.sample(SEQUENCE.slice(0, 2), 1, { max_tokens: 3, temperature: 0 });
    assert.equal(short.sequences[0]!.stop_reason, "length");
    assert.deepEqual(short.sequences[0]!.tokens, SEQUENCE.slice(2, 5));
    const stopped = await sampler.sample(SEQUENCE.slice(0, 2), 1, { max_tokens: 32, temperature: 0, stop: [SEQUENCE[5]!] });
    assert.equal(stopped.sequences[0]!.stop_reason, "stop");
    assert.deepEqual(stopped.sequences[0]!.tokens, SEQUENCE.slice(2, 6));
    // a `stop` list replaces the EOS ids: with a stop token that never comes, the sample runs to max_tokens
    const noEos = await sampler.sample(SEQUENCE.slice(0, 2), 1, { max_tokens: 12, temperature: 0, stop: [3] });
    assert.equal(noEos.sequences[0]!.stop_reason, "length");
    assert.deepEqual(noEos.sequences[0]!.tokens.slice(0, 8), SEQUENCE.slice(2));
    // an empty `stop` list: no stop token at all
    const none = await sampler.sample(SEQUENCE.slice(0, 2), 1, { max_tokens: 12, temperature: 0, stop: [] });
    assert.deepEqual(none.sequences[0], noEos.sequences[0]);
  });
});
