/**
 * AdamW with bias correction and global-norm gradient clipping over the tiny model's LoRA tensors.
 *
 * @module
 */

import type { Param } from "./net.js";
import type { AdamParams } from "./types.js";

/**
 * Applies AdamW step number `t` (1-based) with the accumulated gradients, then clears them.
 * Returns the gradient norm before clipping.
 *
 * @example
 * ```ts
 * const norm = adamwStep(params, 1, { learning_rate: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0, grad_clip_norm: 1 });
 * ```
 */
export function adamwStep(params: readonly Param[], t: number, adam: AdamParams): number {
  const { learning_rate: lr, beta1, beta2, eps, weight_decay: wd, grad_clip_norm: clip } = adam;
  let sq = 0;
  for (const p of params) {
    const g = p.grad;
    for (let i = 0; i < g.length; i++) sq += g[i]! * g[i]!;
  }
  const norm = Math.sqrt(sq);
  if (clip > 0 && norm > clip) {
    const scale = clip / norm;
    for (const p of params) {
      const g = p.grad;
      for (let i = 0; i < g.length; i++) g[i] = g[i]! * scale;
    }
  }
  const bc1 = 1 - Math.pow(beta1, t);
  const bc2 = 1 - Math.pow(beta2, t);
  const decay = lr * wd;
  for (const p of params) {
    const { data: w, grad: g, expAvg: mArr, expAvgSq: vArr } = p;
    for (let i = 0; i < w.length; i++) {
      let wi = w[i]!;
      const gi = g[i]!;
      wi -= decay * wi;
      const mi = beta1 * mArr[i]! + (1 - beta1) * gi;
      const vi = beta2 * vArr[i]! + (1 - beta2) * gi * gi;
      mArr[i] = mi;
      vArr[i] = vi;
      const mHat = mi / bc1;
      const vHat = vi / bc2;
      wi -= (lr * mHat) / (Math.sqrt(vHat) + eps);
      w[i] = wi;
    }
    g.fill(0);
  }
  return norm;
}
