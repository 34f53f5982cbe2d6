/**
 * Input checks of the tiny model: model options, AdamW parameters, and forward/backward batches (datums,
 * tensors dense or CSR, plain arrays or typed arrays, per-loss required inputs). Every error is a
 * {@link ModelInputError} whose message starts with the offending field.
 *
 * @module
 */

import { resolveLossConfig, type LossConfig } from "./losses.js";
import { MAX_VOCAB_SIZE, vocabForBaseModel } from "./vocab.js";
import {
  DEFAULT_LORA_ALPHA,
  isObject,
  MAX_LORA_RANK,
  ModelInputError,
  type AdamParams,
  type TinyModelConfig,
  type TinyModelOptions,
} from "./types.js";

/** One validated datum, ready for the model. */
export type PreparedDatum = {
  /** Input token ids, length n. */
  tokens: Int32Array;
  /** Targets per position: 1, or K for the (N, K) form of cross_entropy. */
  k: number;
  /** Target ids, n·k, row-major. */
  targets: Int32Array;
  /** cross_entropy weights, n·k (null for the RL losses, which ignore weights). */
  weights: Float64Array | null;
  /** Sampler logprobs q, advantages A, per-token clip bounds (RL losses only). */
  q: Float64Array | null;
  adv: Float64Array | null;
  lo: Float64Array | null;
  hi: Float64Array | null;
  /** Shape of this datum's output `logprobs`: [n] or [n, k]. */
  shape: number[];
};

/** A validated batch: the loss, its resolved config and the datums. */
export type PreparedBatch = { readonly loss: LossConfig; readonly datums: readonly PreparedDatum[]; readonly vocabSize: number };

const fail = (field: string, msg: string): never => {
  throw new ModelInputError(`${field}: ${msg}`, field);
};

function toNumber(v: unknown): number {
  return typeof v === "bigint" ? Number(v) : (v as number);
}

function isArrayLike(v: unknown): v is ArrayLike<unknown> {
  return Array.isArray(v) || ArrayBuffer.isView(v);
}

/** A decoded tensor: dense values and shape. */
type Dense = { values: Float64Array; shape: number[] };

function checkShape(shape: unknown, where: string): number[] {
  if (!Array.isArray(shape) || !shape.every((s) => Number.isSafeInteger(s) && (s as number) >= 0)) {
    return fail(`${where}.shape`, "must be an array of non-negative integers");
  }
  return shape as number[];
}

/** Decodes a TensorData (dense or CSR) into float64 values; `integer` checks for integer values. */
function readTensor(t: unknown, where: string): Dense {
  if (!isObject(t)) return fail(where, "must be a TensorData object");
  const data = t.data;
  if (!isArrayLike(data)) return fail(`${where}.data`, "must be an array");
  const crow = t.sparse_crow_indices;
  const col = t.sparse_col_indices;
  if (crow !== undefined && crow !== null) {
    if (!isArrayLike(crow) || !isArrayLike(col)) return fail(`${where}.sparse_col_indices`, "must accompany sparse_crow_indices");
    const shape = checkShape(t.shape, where);
    if (shape.length !== 2) return fail(`${where}.shape`, "a CSR tensor needs a 2-D dense shape [rows, cols]");
    const [rows, cols] = shape as [number, number];
    if (crow.length !== rows + 1) return fail(`${where}.sparse_crow_indices`, `length ${crow.length}, expected rows + 1 = ${rows + 1}`);
    if (col.length !== data.length) return fail(`${where}.sparse_col_indices`, `length ${col.length} does not match ${data.length} values`);
    const values = new Float64Array(rows * cols);
    let prev = 0;
    for (let r = 0; r < rows; r++) {
      const s = toNumber(crow[r]);
      const e = toNumber(crow[r + 1]);
      if (!Number.isInteger(s) || !Number.isInteger(e) || s !== prev || e < s || e > data.length) {
        return fail(`${where}.sparse_crow_indices`, `row ${r} has invalid bounds [${s}, ${e})`);
      }
      for (let i = s; i < e; i++) {
        const c = toNumber(col[i]);
        if (!Number.isInteger(c) || c < 0 || c >= cols)
          return fail(`${where}.sparse_col_indices[${i}]`, `column ${String(c)} is outside [0, ${cols})`);
        values[r * cols + c] = toNumber(data[i]);
      }
      prev = e;
    }
    if (prev !== data.length) return fail(`${where}.sparse_crow_indices`, `ends at ${prev}, expected ${data.length}`);
    return { values, shape };
  }
  const n = data.length;
  let shape: number[] = [n];
  if (t.shape !== undefined && t.shape !== null) {
    shape = checkShape(t.shape, where);
    const numel = shape.reduce((a, b) => a * b, 1);
    if (numel !== n) return fail(`${where}.shape`, `[${shape.join(", ")}] does not match data length ${n}`);
  }
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const v = toNumber(data[i]);
    if (typeof v !== "number") return fail(`${where}.data[${i}]`, `${String(v)} is not a number`);
    values[i] = v;
  }
  return { values, shape };
}

/** Reads a per-position float input of shape (n,) (finite values). */
function readPerToken(t: unknown, n: number, where: string, what: string): Float64Array {
  const { values, shape } = readTensor(t, where);
  if (shape.length !== 1 || values.length !== n) {
    return fail(where, `shape [${shape.join(", ")}] does not match model_input length ${n} (expected [${n}])`);
  }
  for (let i = 0; i < n; i++) if (!Number.isFinite(values[i]!)) fail(`${where}.data[${i}]`, `${what} ${values[i]} is not a finite number`);
  return values;
}

/** Reads the token ids of a datum's model_input chunks. */
function readTokens(mi: unknown, where: string, vocabSize: number): Int32Array {
  if (!isObject(mi) || !Array.isArray(mi.chunks)) return fail(`${where}.model_input.chunks`, "must be an array");
  const toks: number[] = [];
  for (let c = 0; c < mi.chunks.length; c++) {
    const cw = `${where}.model_input.chunks[${c}]`;
    const chunk: unknown = mi.chunks[c];
    if (!isObject(chunk)) return fail(cw, "must be an object");
    if (chunk.type !== "encoded_text") {
      fail(`${cw}.type`, `unsupported chunk type ${JSON.stringify(chunk.type)} (the local server's tiny model reads only "encoded_text")`);
    }
    const tokens = chunk.tokens;
    if (!isArrayLike(tokens)) return fail(`${cw}.tokens`, "must be an array");
    for (let k = 0; k < tokens.length; k++) {
      const tok = toNumber(tokens[k]);
      if (typeof tok !== "number" || !Number.isInteger(tok) || tok < 0 || tok >= vocabSize) {
        fail(`${cw}.tokens[${k}]`, `token ${String(tok)} is not an integer in [0, ${vocabSize})`);
      }
      toks.push(tok);
    }
  }
  if (toks.length === 0) fail(`${where}.model_input`, "contains no tokens");
  return Int32Array.from(toks);
}

/**
 * Validates a forward/backward batch for `lossFn` (with `lossFnConfig`) against a vocabulary of `vocabSize`
 * ids. cross_entropy needs `target_tokens` and `weights` of shape (N,) or (N, K); the RL losses need
 * `target_tokens`, `logprobs` and `advantages` of shape (N,), take optional per-token `clip_low_threshold` /
 * `clip_high_threshold` (ppo, cispo), and ignore `weights`. Other keys are ignored.
 *
 * @example
 * ```ts
 * const batch = prepareBatch(
 *   [{ model_input: { chunks: [{ type: "encoded_text", tokens: [1, 2] }] },
 *      loss_fn_inputs: { target_tokens: { data: [2, 3], dtype: "int64" }, weights: { data: [1, 1], dtype: "float32" } } }],
 *   "cross_entropy", undefined, 151936);
 * ```
 */
export function prepareBatch(data: unknown, lossFn: unknown, lossFnConfig: unknown, vocabSize: number): PreparedBatch {
  const loss = resolveLossConfig(lossFn, lossFnConfig);
  if (!Array.isArray(data) || data.length === 0) return fail("data", "must be a non-empty array of datums");
  const datums: PreparedDatum[] = [];
  const ce = loss.lossFn === "cross_entropy";
  for (let i = 0; i < data.length; i++) {
    const where = `data[${i}]`;
    const datum: unknown = data[i];
    if (!isObject(datum)) return fail(where, "must be an object");
    const tokens = readTokens(datum.model_input, where, vocabSize);
    const n = tokens.length;
    const lfi = datum.loss_fn_inputs;
    if (!isObject(lfi)) return fail(`${where}.loss_fn_inputs`, "must be an object");
    const field = (key: string) => `${where}.loss_fn_inputs.${key}`;
    const need = (key: string): unknown => {
      const v = lfi[key];
      if (v === undefined || v === null) {
        const hint = key === "weights" ? " (one float32 weight per target token; 1.0 trains on a token, 0.0 masks it)" : "";
        fail(field(key), `is required for ${loss.lossFn}${hint}`);
      }
      return v;
    };
    const tgt = readTensor(need("target_tokens"), field("target_tokens"));
    const tshape = tgt.shape;
    if (tshape[0] !== n || tshape.length > 2 || (tshape.length === 2 && !ce)) {
      fail(
        field("target_tokens"),
        tshape.length === 1
          ? `length ${tshape[0]} does not match model_input length ${n}`
          : tshape.length === 2 && !ce
            ? `shape [${tshape.join(", ")}]: ${loss.lossFn} takes one target per position, shape [${n}] (the (N, K) form is cross_entropy's)`
            : `shape [${tshape.join(", ")}] does not match model_input length ${n} (expected [${n}] or [${n}, K])`,
      );
    }
    const k = tshape.length === 2 ? tshape[1]! : 1;
    if (k === 0) fail(field("target_tokens"), `shape [${tshape.join(", ")}] has no targets per position`);
    const targets = new Int32Array(n * k);
    for (let t = 0; t < n * k; t++) {
      const tok = tgt.values[t]!;
      if (!Number.isInteger(tok) || tok < 0 || tok >= vocabSize) {
        fail(`${field("target_tokens")}.data[${t}]`, `token ${String(tok)} is not an integer in [0, ${vocabSize})`);
      }
      targets[t] = tok;
    }
    const out: PreparedDatum = { tokens, k, targets, weights: null, q: null, adv: null, lo: null, hi: null, shape: [...tshape] };
    if (ce) {
      const w = readTensor(need("weights"), field("weights"));
      if (w.shape.length !== tshape.length || w.shape.some((s, d) => s !== tshape[d])) {
        fail(
          field("weights"),
          w.shape.length === 1 && tshape.length === 1
            ? `length ${w.shape[0]} does not match model_input length ${n}`
            : `shape [${w.shape.join(", ")}] does not match target_tokens shape [${tshape.join(", ")}]`,
        );
      }
      for (let t = 0; t < w.values.length; t++) {
        if (!Number.isFinite(w.values[t]!)) fail(`${field("weights")}.data[${t}]`, `weight ${w.values[t]} is not a finite number`);
      }
      out.weights = w.values;
    } else {
      out.q = readPerToken(need("logprobs"), n, field("logprobs"), "logprob");
      out.adv = readPerToken(need("advantages"), n, field("advantages"), "advantage");
      if (loss.lossFn === "ppo" || loss.lossFn === "cispo") {
        const lo = lfi.clip_low_threshold;
        const hi = lfi.clip_high_threshold;
        out.lo =
          lo === undefined || lo === null
            ? new Float64Array(n).fill(loss.clipLow)
            : readPerToken(lo, n, field("clip_low_threshold"), "threshold");
        out.hi =
          hi === undefined || hi === null
            ? new Float64Array(n).fill(loss.clipHigh)
            : readPerToken(hi, n, field("clip_high_threshold"), "threshold");
        for (let t = 0; t < n; t++) {
          const l = out.lo[t]!;
          const h = out.hi[t]!;
          if (l < 0) fail(`${field("clip_low_threshold")}.data[${t}]`, `must be >= 0, got ${l}`);
          if (h < l) fail(`${field("clip_high_threshold")}.data[${t}]`, `${h} is below the low threshold ${l}`);
        }
      }
    }
    datums.push(out);
  }
  return { loss, datums, vocabSize };
}

/**
 * Validates AdamW parameters (finite; lr ≥ 0, betas in [0, 1), eps > 0, decay ≥ 0, clip ≥ 0).
 *
 * @example
 * ```ts
 * validateAdamParams({ learning_rate: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0, grad_clip_norm: 0 });
 * ```
 */
export function validateAdamParams(p: unknown): AdamParams {
  if (!isObject(p)) return fail("adam_params", "must be an object");
  const num = (field: keyof AdamParams): number => {
    const v = p[field];
    if (typeof v !== "number" || !Number.isFinite(v)) fail(`adam_params.${field}`, "must be a finite number");
    return v as number;
  };
  const learning_rate = num("learning_rate");
  const beta1 = num("beta1");
  const beta2 = num("beta2");
  const eps = num("eps");
  const weight_decay = num("weight_decay");
  const grad_clip_norm = num("grad_clip_norm");
  if (learning_rate < 0) fail("adam_params.learning_rate", "must be >= 0");
  if (beta1 < 0 || beta1 >= 1) fail("adam_params.beta1", "must be in [0, 1)");
  if (beta2 < 0 || beta2 >= 1) fail("adam_params.beta2", "must be in [0, 1)");
  if (eps <= 0) fail("adam_params.eps", "must be > 0");
  if (weight_decay < 0) fail("adam_params.weight_decay", "must be >= 0");
  if (grad_clip_norm < 0) fail("adam_params.grad_clip_norm", "must be >= 0");
  return { learning_rate, beta1, beta2, eps, weight_decay, grad_clip_norm };
}

/**
 * Resolves model options into an immutable config (defaults: seed 0, alpha 32, the base model's vocabulary).
 *
 * @example
 * ```ts
 * resolveConfig({ baseModel: "Qwen/Qwen3-8B", rank: 8, trainAttn: true, trainMlp: true, trainUnembed: true }).vocabSize; // 151936
 * ```
 */
export function resolveConfig(opts: TinyModelOptions): TinyModelConfig {
  if (!isObject(opts)) return fail("model options", "must be an object");
  const { baseModel, rank } = opts;
  const seed = opts.seed ?? 0;
  const alpha = opts.alpha ?? DEFAULT_LORA_ALPHA;
  if (typeof baseModel !== "string" || baseModel.length === 0) fail("base_model", "must be a non-empty string");
  if (typeof rank !== "number" || !Number.isInteger(rank) || rank < 1 || rank > MAX_LORA_RANK) {
    fail("rank", `must be an integer in [1, ${MAX_LORA_RANK}], got ${String(rank)}`);
  }
  if (typeof seed !== "number" || !Number.isSafeInteger(seed)) fail("seed", `must be a safe integer, got ${String(seed)}`);
  if (typeof alpha !== "number" || !Number.isFinite(alpha) || alpha <= 0)
    fail("alpha", `must be a finite number > 0, got ${String(alpha)}`);
  for (const flag of ["trainAttn", "trainMlp", "trainUnembed"] as const) {
    if (typeof opts[flag] !== "boolean") fail(flag, "must be a boolean");
  }
  if (!opts.trainAttn && !opts.trainMlp && !opts.trainUnembed) {
    throw new ModelInputError("at least one of train_attn, train_mlp, train_unembed must be true", "lora_config");
  }
  const vocabSize = opts.vocabSize ?? vocabForBaseModel(baseModel).vocabSize;
  if (typeof vocabSize !== "number" || !Number.isInteger(vocabSize) || vocabSize < 2 || vocabSize > MAX_VOCAB_SIZE) {
    fail("vocab_size", `must be an integer in [2, ${MAX_VOCAB_SIZE}], got ${String(vocabSize)}`);
  }
  return Object.freeze({
    baseModel,
    rank,
    seed,
    alpha,
    trainAttn: opts.trainAttn,
    trainMlp: opts.trainMlp,
    trainUnembed: opts.trainUnembed,
    vocabSize,
  });
}
