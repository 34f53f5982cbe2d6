/**
 * Sample from a trained model: teach a LoRA model one sentence (a few cross-entropy steps), save its weights for
 * the sampler, sample a few completions of the sentence's beginning (with their logprobs), and score the whole
 * sentence with computeLogprobs (the logprob of each token given the ones before it).
 *
 *   npx tinker-ts serve --port 8080                      # in another terminal; prints the two exports below
 *   export TINKER_BASE_URL=http://127.0.0.1:8080 TINKER_API_KEY=tml-local-...
 *   npx tsx examples/sample.ts [--steps 30] [--num-samples 3] [--seed 1] [--model-path tinker://RUN/sampler_weights/NAME]
 *
 * With --model-path it samples from that sampler checkpoint instead of training one. Tokens are byte-level ids
 * (the local server has no tokenizer; with the Tinker service use your tokenizer's ids and decode the results).
 */
import { parseArgs } from "node:util";
import { crossEntropyDatum, ServiceClient } from "tinker-ts";

const { values: args } = parseArgs({
  options: {
    steps: { type: "string", default: "30" },
    "num-samples": { type: "string", default: "3" },
    seed: { type: "string", default: "1" },
    "model-path": { type: "string" },
    "base-model": { type: "string", default: "Qwen/Qwen3-8B" },
  },
});

const sentence = [...Buffer.from("the quick brown fox jumps over the lazy dog", "utf8")];
const prompt = sentence.slice(0, 10); // "the quick "
const text = (tokens: readonly number[]): string => JSON.stringify(Buffer.from(tokens.filter((t) => t < 256)).toString("latin1"));

await using service = new ServiceClient();

let modelPath = args["model-path"];
if (modelPath === undefined) {
  const training = await service.createLoraTrainingClient({ baseModel: args["base-model"], rank: 8 });
  const steps = Number(args.steps);
  for (let step = 1; step <= steps; step++) {
    // Pipelined: the optimizer step is sent before the forward-backward's result is awaited.
    const fb = training.forwardBackward([crossEntropyDatum(sentence)], "cross_entropy");
    training.optimStep({ learning_rate: 0.05 });
    const loss = (await fb).metrics["loss:sum"] as number;
    if (step === 1 || step === steps || step % 10 === 0) console.log(`step ${step}  loss ${loss.toFixed(4)}`);
  }
  modelPath = (await training.saveWeightsForSampler("sample-example")).path;
  console.log(`saved ${modelPath}`);
  await training.unload();
}

const sampler = await service.createSamplingClient({ modelPath });
const numSamples = Number(args["num-samples"]);
const res = await sampler.sample(prompt, numSamples, {
  max_tokens: sentence.length - prompt.length,
  temperature: 0.7,
  seed: Number(args.seed),
});
console.log(`prompt ${text(prompt)}`);
for (const [i, s] of res.sequences.entries()) {
  const meanLogprob = (s.logprobs ?? []).reduce((a, b) => a + b, 0) / Math.max(1, s.tokens.length);
  console.log(`sample ${i + 1}: ${text(s.tokens)}  (${s.tokens.length} tokens, ${s.stop_reason}, mean logprob ${meanLogprob.toFixed(3)})`);
}

// Score a sequence: one logprob per token, null for the first (nothing precedes it).
const logprobs = await sampler.computeLogprobs(sentence);
const known = logprobs.filter((lp): lp is number => lp !== null);
console.log(`computeLogprobs: ${logprobs.length} positions, first ${logprobs[0]}, total ${known.reduce((a, b) => a + b, 0).toFixed(3)}`);
