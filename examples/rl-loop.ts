/**
 * A reinforcement-learning loop: each iteration saves the current weights for the sampler, samples a group of
 * completions per prompt, scores them with a reward function, turns rewards into advantages (reward minus the
 * group's mean), and trains on the completions with an RL loss (importance_sampling by default, or ppo, cispo,
 * dro) using the sampler's own logprobs, then takes an Adam step. The mean reward should rise.
 *
 *   npx tinker-ts serve --port 8080                      # in another terminal; prints the two exports below
 *   export TINKER_BASE_URL=http://127.0.0.1:8080 TINKER_API_KEY=tml-local-...
 *   npx tsx examples/rl-loop.ts [--iterations 6] [--group 8] [--loss importance_sampling|ppo|cispo|dro] [--seed 1]
 *
 * The toy reward prefers tokens from the first tenth of the vocabulary; put your task's reward in `reward()`.
 * With a fixed --seed, a run against the local server is reproducible.
 */
import { parseArgs } from "node:util";
import { type Datum, type LossFnType, rlDatum, ServiceClient } from "tinker-ts";

const { values: args } = parseArgs({
  options: {
    iterations: { type: "string", default: "6" },
    group: { type: "string", default: "8" },
    loss: { type: "string", default: "importance_sampling" },
    seed: { type: "string", default: "1" },
    "base-model": { type: "string", default: "Qwen/Qwen3-8B" },
  },
});
const losses = ["importance_sampling", "ppo", "cispo", "dro"];
if (!losses.includes(args.loss)) {
  console.error(`--loss must be one of ${losses.join(", ")}`);
  process.exit(2);
}
const loss = args.loss as LossFnType;
const iterations = Number(args.iterations);
const group = Number(args.group);
const seed = Number(args.seed);

const VOCAB = 151_936; // Qwen3's vocabulary size
/** The reward of one completion, in [0, 1]: here the share of its tokens in the first tenth of the vocabulary. */
function reward(tokens: readonly number[]): number {
  return tokens.length === 0 ? 0 : tokens.filter((t) => t < VOCAB / 10).length / tokens.length;
}

const prompts = [
  [151644, 872, 198, 9707, 151645, 198, 151644, 77091, 198], // Qwen3 chat tokens: user "Hello", then assistant
  [151644, 872, 198, 3838, 374, 220, 17, 10, 17, 30, 151645, 198, 151644, 77091, 198],
];

await using service = new ServiceClient();
const training = await service.createLoraTrainingClient({ baseModel: args["base-model"], rank: 8 });

for (let it = 1; it <= iterations; it++) {
  // 1. Sample with the current weights (an unnamed sampler save).
  const sampler = await training.saveWeightsAndGetSamplingClient();
  const results = await Promise.all(
    prompts.map((prompt, p) => sampler.sample(prompt, group, { max_tokens: 8, temperature: 1, seed: seed * 1000 + it * 10 + p })),
  );
  // 2. Rewards → advantages (centred per prompt group); 3. datums with the sampler's logprobs.
  const data: Datum[] = [];
  let total = 0;
  let count = 0;
  results.forEach((res, p) => {
    const prompt = prompts[p]!;
    const rewards = res.sequences.map((s) => reward(s.tokens));
    const mean = rewards.reduce((a, b) => a + b, 0) / rewards.length;
    total += rewards.reduce((a, b) => a + b, 0);
    count += rewards.length;
    res.sequences.forEach((s, i) => {
      const advantage = rewards[i]! - mean;
      if (advantage === 0 || s.tokens.length === 0) return; // no signal
      data.push(
        rlDatum([...prompt, ...s.tokens], {
          logprobs: [...prompt.map(() => 0), ...(s.logprobs ?? [])], // prompt positions are masked by advantage 0
          advantages: [...prompt.map(() => 0), ...s.tokens.map(() => advantage)],
        }),
      );
    });
  });
  // 4. The RL loss on the sampled completions, then Adam.
  //    (On-policy, the loss's value is about 0, since the advantages of a group sum to 0; its gradient is not.)
  if (data.length > 0) {
    // Both are sent at once; seq_ids keep them in order (the step applies this forward-backward's gradient).
    await Promise.all([training.forwardBackward(data, loss), training.optimStep({ learning_rate: 0.1 })]);
  }
  console.log(`iteration ${it}  mean reward ${(total / count).toFixed(3)}  trained on ${data.length} completions (${loss})`);
}
await training.unload();
