/**
 * The five loss functions of the Tinker service (PROTOCOL.md §11, decision 14), as per-token functions of the
 * learner's log-probability `lp` of the target token. Each returns the token's loss and writes dLoss/dlp; the
 * model turns dLoss/dlp into exact gradients of the LoRA weights. All losses are summed over tokens and datums
 * (metric `loss:sum`); nothing is averaged.
 *
 * Notation: q = sampler logprob (`logprobs` input), A = `advantages`, w = `weights`, r = exp(lp − q).
 *
 * | loss | per-token loss | dLoss/dlp | config (defaults) |
 * |---|---|---|---|
 * | `cross_entropy` | −w·lp | −w | none |
 * | `importance_sampling` | −r·A | −r·A | none |
 * | `ppo` | −min(r·A, clamp(r, lo, hi)·A) | −r·A where the unclipped term is the min or lo < r < hi, else 0 | `clip_low_threshold` 0.8, `clip_high_threshold` 1.2 |
 * | `cispo` | −sg(clamp(r, lo, hi))·lp·A | −clamp(r, lo, hi)·A | `clip_low_threshold` 0.0, `clip_high_threshold` 4.0 |
 * | `dro` | −(lp·A − ½·β·(lp − q)²) | −(A − β·(lp − q)) | `beta` 0.05 |
 *
 * The RL losses ignore `weights`. Per-token `clip_low_threshold` / `clip_high_threshold` inputs (shape (N,))
 * override the config of `ppo` and `cispo` for that datum.
 *
 * @module
 */

import { isObject, ModelInputError } from "./types.js";

/** The loss functions of the Tinker service. */
export const LOSS_FNS = ["cross_entropy", "importance_sampling", "ppo", "cispo", "dro"] as const;

/** A loss function name. */
export type LossFn = (typeof LOSS_FNS)[number];

/** The `loss_fn_config` keys each loss accepts and their defaults. */
export const LOSS_CONFIG_DEFAULTS: Readonly<Record<LossFn, Readonly<Record<string, number>>>> = Object.freeze({
  cross_entropy: Object.freeze({}),
  importance_sampling: Object.freeze({}),
  ppo: Object.freeze({ clip_low_threshold: 0.8, clip_high_threshold: 1.2 }),
  cispo: Object.freeze({ clip_low_threshold: 0.0, clip_high_threshold: 4.0 }),
  dro: Object.freeze({ beta: 0.05 }),
});

/** A loss's resolved configuration. */
export type LossConfig = Readonly<{ lossFn: LossFn; clipLow: number; clipHigh: number; beta: number }>;

/** Checks a loss name; throws {@link ModelInputError} naming `loss_fn` otherwise. */
export function checkLossFn(lossFn: unknown): LossFn {
  if (typeof lossFn !== "string" || !(LOSS_FNS as readonly string[]).includes(lossFn)) {
    throw new ModelInputError(
      `loss_fn: unsupported loss function ${JSON.stringify(lossFn)} (supported: ${LOSS_FNS.map((n) => JSON.stringify(n)).join(", ")})`,
      "loss_fn",
    );
  }
  return lossFn as LossFn;
}

/**
 * Resolves `loss_fn_config` against the loss's defaults. Unknown keys, non-finite values, a negative `beta`
 * or clip thresholds with low > high or low < 0 are errors naming the key.
 *
 * @example
 * ```ts
 * resolveLossConfig("ppo", { clip_low_threshold: 0.9 }); // { lossFn: "ppo", clipLow: 0.9, clipHigh: 1.2, beta: 0 }
 * ```
 */
export function resolveLossConfig(lossFnName: unknown, config: unknown): LossConfig {
  const lossFn = checkLossFn(lossFnName);
  const defaults = LOSS_CONFIG_DEFAULTS[lossFn];
  const values: Record<string, number> = { ...defaults };
  if (config !== undefined && config !== null) {
    if (!isObject(config)) throw new ModelInputError("loss_fn_config: must be an object of numbers", "loss_fn_config");
    for (const [key, v] of Object.entries(config)) {
      const field = `loss_fn_config.${key}`;
      if (!(key in defaults)) {
        const accepted = Object.keys(defaults);
        throw new ModelInputError(
          `${field}: not a parameter of ${lossFn} (${accepted.length ? `accepted: ${accepted.join(", ")}` : "it takes no config"})`,
          field,
        );
      }
      if (typeof v !== "number" || !Number.isFinite(v)) throw new ModelInputError(`${field}: must be a finite number`, field);
      values[key] = v;
    }
  }
  const clipLow = values.clip_low_threshold ?? 0;
  const clipHigh = values.clip_high_threshold ?? 0;
  const beta = values.beta ?? 0;
  if (lossFn === "ppo" || lossFn === "cispo") checkClip(clipLow, clipHigh, "loss_fn_config");
  if (beta < 0) throw new ModelInputError("loss_fn_config.beta: must be >= 0", "loss_fn_config.beta");
  return Object.freeze({ lossFn, clipLow, clipHigh, beta });
}

/** Checks a pair of clip thresholds (0 ≤ low ≤ high). */
export function checkClip(lo: number, hi: number, where: string): void {
  if (lo < 0) throw new ModelInputError(`${where}.clip_low_threshold: must be >= 0, got ${lo}`, `${where}.clip_low_threshold`);
  if (hi < lo) {
    throw new ModelInputError(
      `${where}.clip_high_threshold: must be >= clip_low_threshold (${lo}), got ${hi}`,
      `${where}.clip_high_threshold`,
    );
  }
}

/** Per-token inputs of a loss (q, A, w, clip bounds). */
export type TokenInputs = { w: number; q: number; adv: number; lo: number; hi: number };

/**
 * One token's loss. Returns the loss value and stores dLoss/dlp in `grad[0]`.
 *
 * @example
 * ```ts
 * const g = new Float64Array(1);
 * const cfg = resolveLossConfig("cross_entropy", undefined);
 * tokenLoss(cfg, -2, { w: 1, q: 0, adv: 0, lo: 0, hi: 0 }, g); // 2, g[0] = -1
 * ```
 */
export function tokenLoss(cfg: LossConfig, lp: number, t: TokenInputs, grad: Float64Array): number {
  switch (cfg.lossFn) {
    case "cross_entropy":
      grad[0] = -t.w;
      return -t.w * lp;
    case "importance_sampling": {
      const r = Math.exp(lp - t.q);
      grad[0] = -r * t.adv;
      return -r * t.adv;
    }
    case "ppo": {
      const r = Math.exp(lp - t.q);
      const c = r < t.lo ? t.lo : r > t.hi ? t.hi : r;
      const unclipped = r * t.adv;
      const clipped = c * t.adv;
      if (unclipped <= clipped) {
        grad[0] = -unclipped; // d(r·A)/dlp = r·A
        return -unclipped;
      }
      // The clipped term is the minimum; it depends on lp only while r is inside (lo, hi).
      grad[0] = r > t.lo && r < t.hi ? -unclipped : 0;
      return -clipped;
    }
    case "cispo": {
      const r = Math.exp(lp - t.q);
      const c = r < t.lo ? t.lo : r > t.hi ? t.hi : r;
      grad[0] = -c * t.adv;
      return -c * lp * t.adv;
    }
    case "dro": {
      const diff = lp - t.q;
      grad[0] = -(t.adv - cfg.beta * diff);
      return -(lp * t.adv - 0.5 * cfg.beta * diff * diff);
    }
  }
}
