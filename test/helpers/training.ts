/**
 * Shared training fixtures for tests against the local server: fixed batches and a train loop that records
 * `loss:sum` per step, so loss sequences are comparable across clients.
 */
import { crossEntropyDatum, type AdamParams, type Datum, type TrainingClient } from "../../src/index.js";

/** The base model the tests train. */
export const BASE_MODEL = "Qwen/Qwen3-8B";

/** Adam parameters large enough to move the tiny model visibly in a few steps. */
export const ADAM: AdamParams = { learning_rate: 0.02, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0, grad_clip_norm: 0 };

/** The batch of step `step`: `size` deterministic sequences of `length` tokens. */
export function batch(step: number, size = 4, length = 12): Datum[] {
  return Array.from({ length: size }, (_, i) => crossEntropyDatum(Array.from({ length }, (_, j) => (step * 31 + i * 17 + j * 7) % 256)));
}

/** Trains steps `from`..`from+count-1` (forward_backward then optim_step, pipelined) and returns the losses. */
export async function trainSteps(training: TrainingClient, from: number, count: number, size?: number, length?: number): Promise<number[]> {
  const losses: number[] = [];
  for (let s = from; s < from + count; s++) {
    const fb = training.forwardBackward(batch(s, size, length), "cross_entropy");
    const step = training.optimStep(ADAM);
    losses.push((await fb).metrics["loss:sum"] as number);
    await step;
  }
  return losses;
}
