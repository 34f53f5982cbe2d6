/**
 * Datums: typed helpers that build them for each loss (PROTOCOL §11), their validation before anything is
 * sent, and the datum rewriting of `forwardBackwardCustom` (§11.8).
 *
 * @module
 */
import type { components } from "./core/wire.js";
import { InvalidArgumentError } from "./core/errors.js";
import { InvalidDatumError } from "./core/training-errors.js";

type Datum = components["schemas"]["Datum"];
type TensorData = components["schemas"]["TensorData"];
type LossFnType = components["schemas"]["LossFnType"];
type ForwardBackwardOutput = components["schemas"]["ForwardBackwardOutput"];

/**
 * Numbers as a plain array or a typed array: what the datum helpers take for tokens, weights, logprobs and
 * advantages.
 *
 * @example
 * ```ts
 * const weights: Numbers = Float32Array.of(0, 0, 1, 1);
 * ```
 */
export type Numbers = readonly number[] | Float32Array | Float64Array | Int32Array;

const LOSSES: readonly LossFnType[] = ["cross_entropy", "importance_sampling", "ppo", "cispo", "dro"];
const RL_INPUTS = ["target_tokens", "logprobs", "advantages"] as const;
/** The dtype of each known loss input (the SDK's defaults for raw lists). */
const INPUT_DTYPES: Record<string, "int64" | "float32"> = {
  target_tokens: "int64",
  weights: "float32",
  logprobs: "float32",
  advantages: "float32",
  clip_low_threshold: "float32",
  clip_high_threshold: "float32",
};
const INT32_MAX = 2 ** 31 - 1;

function checkTokens(tokens: Numbers, what: string): void {
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (!Number.isInteger(t) || t < 0 || t > INT32_MAX) {
      throw new InvalidArgumentError(`${what}[${i}] must be a token id (an integer from 0 to 2^31−1), got ${String(t)}.`);
    }
  }
}

function toList(values: Numbers): number[] {
  return Array.from(values);
}

/**
 * Builds a next-token-prediction datum for `cross_entropy` from a token sequence: the model reads
 * `tokens[0..n-2]` and predicts `tokens[1..n-1]` (`target_tokens`, int64), each position weighted by `weights`
 * (float32, default 1; use 0 for prompt tokens).
 *
 * @throws {InvalidArgumentError} when there are fewer than 2 tokens, a token is not a non-negative integer,
 *   or `weights` has the wrong length.
 * @example
 * ```ts
 * const datum = crossEntropyDatum([10, 20, 30, 40], { weights: [0, 1, 1] });
 * // model_input tokens [10, 20, 30], target_tokens [20, 30, 40], weights [0, 1, 1]
 * ```
 */
export function crossEntropyDatum(tokens: Numbers, options: { weights?: Numbers } = {}): Datum {
  if ((!Array.isArray(tokens) && !ArrayBuffer.isView(tokens)) || tokens.length < 2) {
    throw new InvalidArgumentError("crossEntropyDatum needs at least 2 tokens.");
  }
  checkTokens(tokens, "tokens");
  const n = tokens.length - 1;
  const weights = options.weights === undefined ? new Array<number>(n).fill(1) : toList(options.weights);
  if (weights.length !== n) {
    throw new InvalidArgumentError(`weights must have ${n} entries (one per predicted token), got ${weights.length}.`);
  }
  weights.forEach((w, i) => {
    if (!Number.isFinite(w)) throw new InvalidArgumentError(`weights[${i}] must be a finite number, got ${String(w)}.`);
  });
  const all = toList(tokens);
  return {
    model_input: { chunks: [{ type: "encoded_text", tokens: all.slice(0, n) }] },
    loss_fn_inputs: {
      target_tokens: { data: all.slice(1), dtype: "int64", shape: [n] },
      weights: { data: weights, dtype: "float32", shape: [n] },
    },
  };
}

/** Options of {@link rlDatum}. Every per-token array has one entry per token of the full sequence. */
export interface RlDatumOptions {
  /**
   * The sampler's logprob of each token of the full sequence (position 0 is dropped: nothing predicts it). Use 0
   * for prompt tokens.
   */
  logprobs: Numbers;
  /** The advantage of each token of the full sequence (position 0 is dropped). Use 0 for prompt tokens. */
  advantages: Numbers;
  /** Per-token lower clip bound on the ratio (`ppo`, `cispo`), overriding `lossFnConfig` for this datum. */
  clipLowThreshold?: number | Numbers;
  /** Per-token upper clip bound on the ratio (`ppo`, `cispo`), overriding `lossFnConfig` for this datum. */
  clipHighThreshold?: number | Numbers;
}

/**
 * Builds a datum for the RL losses (`importance_sampling`, `ppo`, `cispo`, `dro`) from a full sequence (prompt and
 * completion) and per-token arrays aligned with it. Next-token alignment, as the service expects: the model reads
 * `tokens[0..n-2]`, and `target_tokens`, `logprobs` and `advantages` are `[1..n-1]` of the full arrays (the first
 * entry is dropped: no position predicts the first token). `target_tokens` is int64, the rest float32. The RL losses
 * ignore `weights`: mask a token by giving it advantage 0 (and logprob 0), as the cookbook does.
 *
 * @throws {InvalidArgumentError} when there are fewer than 2 tokens, a token is not a non-negative integer, an
 *   array's length differs from `tokens.length`, or a value is not finite.
 * @example
 * ```ts
 * const prompt = [1, 2, 3];
 * const completion = [4, 5];
 * const sampled = [-0.7, -1.2]; // the sampler's logprobs of the completion
 * const datum = rlDatum([...prompt, ...completion], {
 *   logprobs: [0, 0, 0, ...sampled],
 *   advantages: [0, 0, 0, 0.5, 0.5],
 * });
 * await training.forwardBackward([datum], "ppo", { lossFnConfig: { clip_low_threshold: 0.8, clip_high_threshold: 1.2 } });
 * ```
 */
export function rlDatum(tokens: Numbers, options: RlDatumOptions): Datum {
  if ((!Array.isArray(tokens) && !ArrayBuffer.isView(tokens)) || tokens.length < 2) {
    throw new InvalidArgumentError("rlDatum needs at least 2 tokens (the full sequence: prompt and completion).");
  }
  checkTokens(tokens, "tokens");
  const n = tokens.length - 1;
  const shifted = (values: number | Numbers | undefined, name: string): number[] | undefined => {
    if (values === undefined) return undefined;
    const list = typeof values === "number" ? new Array<number>(tokens.length).fill(values) : toList(values);
    if (list.length !== tokens.length) {
      throw new InvalidArgumentError(
        `${name} must have ${tokens.length} entries (one per token of the full sequence), got ${list.length}.`,
      );
    }
    list.forEach((v, i) => {
      if (!Number.isFinite(v)) throw new InvalidArgumentError(`${name}[${i}] must be a finite number, got ${String(v)}.`);
    });
    return list.slice(1);
  };
  const all = toList(tokens);
  const f32 = (data: number[]): TensorData => ({ data, dtype: "float32", shape: [n] });
  const low = shifted(options.clipLowThreshold, "clipLowThreshold");
  const high = shifted(options.clipHighThreshold, "clipHighThreshold");
  return {
    model_input: { chunks: [{ type: "encoded_text", tokens: all.slice(0, n) }] },
    loss_fn_inputs: {
      target_tokens: { data: all.slice(1), dtype: "int64", shape: [n] },
      logprobs: f32(shifted(options.logprobs, "logprobs")!),
      advantages: f32(shifted(options.advantages, "advantages")!),
      ...(low === undefined ? {} : { clip_low_threshold: f32(low) }),
      ...(high === undefined ? {} : { clip_high_threshold: f32(high) }),
    },
  };
}

// ------------------------------------------------------------------------------------------ validation

function isNumbers(value: unknown): value is Numbers {
  return Array.isArray(value) || (ArrayBuffer.isView(value) && !(value instanceof DataView));
}

function isBytes(value: unknown): boolean {
  return value instanceof Uint8Array || typeof value === "string";
}

/** The number of tokens of a model input, or undefined when a chunk's length is not known (an image without `expected_tokens`). */
function modelInputLength(chunks: readonly unknown[], at: string): number | undefined {
  let length: number | undefined = 0;
  chunks.forEach((raw, j) => {
    const where = `${at}.model_input.chunks[${j}]`;
    if (typeof raw !== "object" || raw === null) throw new InvalidDatumError(where, "must be a chunk object.");
    const chunk = raw as Record<string, unknown>;
    const type = chunk["type"] ?? "encoded_text";
    if (type === "encoded_text") {
      const tokens = chunk["tokens"];
      if (!isNumbers(tokens)) throw new InvalidDatumError(`${where}.tokens`, "must be an array of token ids.");
      checkTokens(tokens, `${where}.tokens`);
      if (length !== undefined) length += tokens.length;
    } else if (type === "image") {
      if (!isBytes(chunk["data"])) throw new InvalidDatumError(`${where}.data`, "must be the image bytes (a Uint8Array or base64 string).");
      if (typeof chunk["format"] !== "string") throw new InvalidDatumError(`${where}.format`, 'must be the image format, e.g. "png".');
      const expected = chunk["expected_tokens"];
      if (expected !== undefined && expected !== null && (!Number.isInteger(expected) || (expected as number) < 0)) {
        throw new InvalidDatumError(`${where}.expected_tokens`, `must be a non-negative integer, got ${String(expected)}.`);
      }
      length = length !== undefined && typeof expected === "number" ? length + expected : undefined;
    } else if (type === "dmel") {
      if (!isBytes(chunk["dmel"])) throw new InvalidDatumError(`${where}.dmel`, "must be the dmel bytes (a Uint8Array or base64 string).");
      length = undefined;
    } else {
      throw new InvalidDatumError(
        `${where}.type`,
        `is ${JSON.stringify(type)}; the wire carries "encoded_text", "image" and "dmel" chunks (an image asset pointer cannot be sent: send the image bytes).`,
      );
    }
  });
  return length;
}

/** Checks one tensor (dense, or sparse CSR) and returns its dense shape. */
function checkTensor(raw: unknown, where: string, expectedDtype: "int64" | "float32" | undefined): number[] {
  if (typeof raw !== "object" || raw === null) throw new InvalidDatumError(where, "must be a TensorData { data, dtype, shape? }.");
  const td = raw as Record<string, unknown>;
  const dtype = td["dtype"];
  if (dtype !== "int64" && dtype !== "float32")
    throw new InvalidDatumError(`${where}.dtype`, `must be "int64" or "float32", got ${JSON.stringify(dtype)}.`);
  if (expectedDtype !== undefined && dtype !== expectedDtype)
    throw new InvalidDatumError(`${where}.dtype`, `must be "${expectedDtype}", got "${dtype}".`);
  const data = td["data"];
  if (!isNumbers(data)) throw new InvalidDatumError(`${where}.data`, "must be an array of numbers.");
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (dtype === "int64" ? !Number.isSafeInteger(v) : !Number.isFinite(v)) {
      throw new InvalidDatumError(
        `${where}.data[${i}]`,
        `must be ${dtype === "int64" ? "an integer" : "a finite number"}, got ${String(v)}.`,
      );
    }
  }
  const shapeRaw = td["shape"];
  let shape: number[] | undefined;
  if (shapeRaw !== undefined && shapeRaw !== null) {
    if (!Array.isArray(shapeRaw) || !shapeRaw.every((d) => Number.isInteger(d) && (d as number) >= 0)) {
      throw new InvalidDatumError(`${where}.shape`, "must be an array of non-negative integers.");
    }
    shape = shapeRaw as number[];
  }
  const crow = td["sparse_crow_indices"];
  const col = td["sparse_col_indices"];
  const sparse = (crow !== undefined && crow !== null) || (col !== undefined && col !== null);
  if (!sparse) {
    if (shape === undefined) return [data.length];
    const size = shape.reduce((a, b) => a * b, 1);
    if (size !== data.length)
      throw new InvalidDatumError(`${where}.shape`, `[${shape.join(", ")}] holds ${size} elements but data has ${data.length}.`);
    return shape;
  }
  if (!isNumbers(crow) || !isNumbers(col))
    throw new InvalidDatumError(where, "is sparse: it needs both sparse_crow_indices and sparse_col_indices.");
  if (shape === undefined || shape.length !== 2)
    throw new InvalidDatumError(`${where}.shape`, "of a sparse (CSR) tensor must be its dense 2-D shape [rows, cols].");
  const [rows, cols] = shape as [number, number];
  if (crow.length !== rows + 1)
    throw new InvalidDatumError(`${where}.sparse_crow_indices`, `must have rows + 1 = ${rows + 1} entries, got ${crow.length}.`);
  if (crow[0] !== 0) throw new InvalidDatumError(`${where}.sparse_crow_indices`, `must start at 0, got ${String(crow[0])}.`);
  for (let r = 0; r < rows; r++) {
    if (!Number.isInteger(crow[r + 1]) || crow[r + 1]! < crow[r]!) {
      throw new InvalidDatumError(
        `${where}.sparse_crow_indices`,
        `must be non-decreasing integers (entry ${r + 1} is ${String(crow[r + 1])}).`,
      );
    }
  }
  const nnz = crow[rows]!;
  if (col.length !== nnz || data.length !== nnz) {
    throw new InvalidDatumError(
      where,
      `is sparse with ${nnz} stored values (the last crow index), but data has ${data.length} and sparse_col_indices ${col.length}.`,
    );
  }
  for (let i = 0; i < col.length; i++) {
    if (!Number.isInteger(col[i]) || col[i]! < 0 || col[i]! >= cols) {
      throw new InvalidDatumError(
        `${where}.sparse_col_indices[${i}]`,
        `must be a column index from 0 to ${cols - 1}, got ${String(col[i])}.`,
      );
    }
  }
  return shape;
}

/** The loss inputs each loss needs. */
function requiredInputs(lossFn: LossFnType): readonly string[] {
  return lossFn === "cross_entropy" ? ["target_tokens", "weights"] : RL_INPUTS;
}

/**
 * Checks a batch before anything is sent: a known loss, a non-empty array, each datum's chunks, every tensor
 * (dtype, finite values, shape against data, CSR consistency), the loss's required inputs, and that every
 * per-token input has the shape of `target_tokens`, whose length matches the model input's.
 *
 * @throws {InvalidArgumentError} for an unknown loss or an empty batch; {@link InvalidDatumError} naming the field.
 * @example
 * ```ts
 * validateData([crossEntropyDatum([1, 2, 3])], "cross_entropy", "forwardBackward"); // passes
 * ```
 */
export function validateData(data: readonly Datum[], lossFn: LossFnType, method: string): void {
  if (!LOSSES.includes(lossFn)) {
    throw new InvalidArgumentError(`lossFn must be one of ${LOSSES.map((l) => `"${l}"`).join(", ")}, got ${JSON.stringify(lossFn)}.`);
  }
  if (!Array.isArray(data) || data.length === 0) {
    throw new InvalidArgumentError(`${method} needs a non-empty array of Datum (see crossEntropyDatum and rlDatum).`);
  }
  data.forEach((datum, i) => {
    const at = `data[${i}]`;
    const chunks = (datum as Partial<Datum> | undefined)?.model_input?.chunks;
    if (!Array.isArray(chunks) || chunks.length === 0) {
      throw new InvalidDatumError(
        `${at}.model_input.chunks`,
        'must be a non-empty array of chunks, e.g. [{ type: "encoded_text", tokens }].',
      );
    }
    const inputLength = modelInputLength(chunks, at);
    const inputs = datum.loss_fn_inputs;
    if (typeof inputs !== "object" || inputs === null)
      throw new InvalidDatumError(`${at}.loss_fn_inputs`, "must be an object of TensorData.");
    for (const key of requiredInputs(lossFn)) {
      if (inputs[key] === undefined) throw new InvalidDatumError(`${at}.loss_fn_inputs.${key}`, `is required by ${lossFn}.`);
    }
    const shapes = new Map<string, number[]>();
    for (const [key, td] of Object.entries(inputs)) shapes.set(key, checkTensor(td, `${at}.loss_fn_inputs.${key}`, INPUT_DTYPES[key]));
    const target = shapes.get("target_tokens");
    if (target === undefined) return;
    if (inputLength !== undefined && target[0] !== inputLength) {
      throw new InvalidDatumError(
        `${at}.loss_fn_inputs.target_tokens`,
        `has ${target[0]} positions but model_input has ${inputLength} tokens (one target per input token).`,
      );
    }
    for (const [key, shape] of shapes) {
      if (key === "target_tokens" || INPUT_DTYPES[key] === undefined) continue;
      if (shape.length !== target.length || shape.some((d, j) => d !== target[j])) {
        throw new InvalidDatumError(
          `${at}.loss_fn_inputs.${key}`,
          `has shape [${shape.join(", ")}] but target_tokens has [${target.join(", ")}].`,
        );
      }
    }
  });
}

// ------------------------------------------------------------------------------------------ custom losses

/** What a custom loss returns: its value, its gradient with respect to each datum's logprobs, and metrics. */
export interface CustomLossResult {
  /** The loss value (reported to you only; the service never sees it). */
  loss: number;
  /** ∂loss/∂logprobs per datum, each the length of that datum's logprobs. */
  grad: ArrayLike<number>[];
  /** Metrics merged into the result's `metrics` (no `:reduction` suffix needed). */
  metrics?: Record<string, number>;
}

/**
 * A custom loss for {@link TrainingClient.forwardBackwardCustom}: gets each datum's per-token logprobs (in
 * order) and returns the loss and its gradient with respect to them.
 *
 * @example
 * ```ts
 * const weightedNll: CustomLossFn = (logprobs) => ({
 *   loss: -logprobs.reduce((s, lp) => s + lp.reduce((a, b) => a + b, 0), 0),
 *   grad: logprobs.map((lp) => new Float32Array(lp.length).fill(-1)),
 * });
 * ```
 */
export type CustomLossFn = (logprobs: Float32Array[]) => CustomLossResult;

/**
 * @internal The two batches of `forwardBackwardCustom`: the forward's (every datum with `weights`, zeros when
 * it had none, so both calls split alike), and a builder of the forward_backward's from the forward's result.
 */
export function customLossDatums(data: readonly Datum[]): {
  forwardData: Datum[];
  backwardData: (out: ForwardBackwardOutput, lossFn: CustomLossFn) => { data: Datum[]; metrics: Record<string, number> };
} {
  if (!Array.isArray(data) || data.length === 0) {
    throw new InvalidArgumentError("forwardBackwardCustom needs a non-empty array of Datum (see crossEntropyDatum).");
  }
  const forwardData = data.map((d, i): Datum => {
    const inputs = (d as Partial<Datum> | undefined)?.loss_fn_inputs;
    if (typeof inputs !== "object" || inputs === null)
      throw new InvalidDatumError(`data[${i}].loss_fn_inputs`, "must be an object of TensorData.");
    for (const key of Object.keys(inputs)) {
      if (key !== "target_tokens" && key !== "weights") {
        throw new InvalidDatumError(
          `data[${i}].loss_fn_inputs.${key}`,
          "is not allowed: a custom loss's datums hold only target_tokens and weights.",
        );
      }
    }
    const target = inputs["target_tokens"];
    if (target === undefined)
      throw new InvalidDatumError(`data[${i}].loss_fn_inputs.target_tokens`, "is required by forwardBackwardCustom.");
    const weights = inputs["weights"] ?? {
      data: new Array<number>(target.data?.length ?? 0).fill(0),
      dtype: "float32" as const,
      shape: target.shape ?? null,
    };
    return { ...d, loss_fn_inputs: { target_tokens: target, weights } };
  });
  validateData(forwardData, "cross_entropy", "forwardBackwardCustom");
  const backwardData = (out: ForwardBackwardOutput, lossFn: CustomLossFn): { data: Datum[]; metrics: Record<string, number> } => {
    if (out.loss_fn_outputs.length !== forwardData.length) {
      throw new InvalidArgumentError(
        `forwardBackwardCustom: the forward returned ${out.loss_fn_outputs.length} outputs for ${forwardData.length} datums.`,
      );
    }
    const logprobs = out.loss_fn_outputs.map((o, i) => {
      const lp = o["logprobs"];
      if (lp === undefined) throw new InvalidArgumentError(`forwardBackwardCustom: the forward returned no logprobs for datum ${i}.`);
      return Float32Array.from(lp.data);
    });
    const result = lossFn(logprobs);
    if (typeof result !== "object" || result === null || !Array.isArray(result.grad) || result.grad.length !== logprobs.length) {
      throw new InvalidArgumentError(
        `forwardBackwardCustom: lossFn must return { loss, grad, metrics? } with one gradient per datum (${logprobs.length}).`,
      );
    }
    const metrics: Record<string, number> = {};
    for (const [key, value] of Object.entries(result.metrics ?? {})) {
      if (typeof value !== "number")
        throw new InvalidArgumentError(`forwardBackwardCustom: metric ${key} must be a number, got ${String(value)}.`);
      metrics[key] = value;
    }
    const next = forwardData.map((d, i): Datum => {
      const g = result.grad[i]!;
      if (g.length !== logprobs[i]!.length) {
        throw new InvalidArgumentError(
          `forwardBackwardCustom: grad[${i}] has ${g.length} entries but datum ${i} has ${logprobs[i]!.length} logprobs.`,
        );
      }
      const weights = Array.from(g, (v, j) => {
        if (!Number.isFinite(v))
          throw new InvalidArgumentError(`forwardBackwardCustom: grad[${i}][${j}] must be a finite number, got ${String(v)}.`);
        return v === 0 ? 0 : Math.fround(-v);
      });
      const target = d.loss_fn_inputs["target_tokens"]!;
      return {
        model_input: d.model_input,
        loss_fn_inputs: { target_tokens: target, weights: { data: weights, dtype: "float32", shape: target.shape ?? [weights.length] } },
      };
    });
    return { data: next, metrics };
  };
  return { forwardData, backwardData };
}
