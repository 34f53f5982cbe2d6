/**
 * The names README.md's ```ts blocks use without defining them (`service`, `training`, `rest`, `batch`, ...),
 * created for real against the server of TINKER_BASE_URL / TINKER_API_KEY. The files that scripts/examples.ts
 * generates in test/readme-snippets/ import from here the names their block uses and does not declare, and
 * test/readme-snippets.test.ts runs each file in its own process against a fresh local server, so every process
 * gets its own training run.
 *
 * Keep this list short and the README's wording in step with it ("Snippets" under Development lists the names).
 *
 * @example
 * ```ts
 * import { training, batch } from "./readme-prelude.js";
 * await training.forwardBackward(batch, "cross_entropy");
 * ```
 */
import { crossEntropyDatum, type Datum, ServiceClient } from "../../src/index.js";

/** A client for the server of TINKER_BASE_URL / TINKER_API_KEY (as `new ServiceClient()` in the Quick start). */
export const service = new ServiceClient();
/** `service.createRestClient()`. */
export const rest = service.createRestClient();
/** A rank-8 LoRA training client on Qwen/Qwen3-8B. */
export const training = await service.createLoraTrainingClient({ baseModel: "Qwen/Qwen3-8B", rank: 8 });
/** The training run of `training` (its model id), which has one training checkpoint, `tinkerPath`. */
export const runId = training.modelId;
/** Two cross-entropy datums (Qwen3 token ids, with weights). */
export const batch: Datum[] = [crossEntropyDatum([151644, 872, 198, 9707, 11]), crossEntropyDatum([151644, 77091, 198, 13048])];
/** The batch after `batch`. */
export const nextBatch: Datum[] = [crossEntropyDatum([151644, 872, 198, 3838, 374, 220, 17, 10, 17, 30])];
/** A training checkpoint of `runId` (`tinker://<run>/weights/prelude`), saved after one step on `batch`. */
export const tinkerPath = await (async () => {
  training.forwardBackward(batch, "cross_entropy");
  training.optimStep({ learning_rate: 1e-3 });
  return (await training.saveState("prelude")).path;
})();
/** The last checkpoint a script saved (`tinkerPath`). */
export const lastCheckpointPath = tinkerPath;
/** A prompt (Qwen3 chat tokens). */
export const promptTokens: number[] = [151644, 872, 198, 9707, 151645, 198, 151644, 77091, 198];
/** A completion of `promptTokens` (in an RL loop, from `sampler.sample`). */
export const completionTokens: number[] = [9707, 0, 2585, 525, 498, 30, 151645];
/** The sampler's logprob of each token of `completionTokens` (from the same `sample` call's `logprobs`). */
export const samplerLogprobs: number[] = [-1.9, -0.6, -2.4, -0.3, -1.1, -0.8, -0.2];
/** The completion's advantage (its reward minus the group's mean). */
export const advantage = 0.5;
