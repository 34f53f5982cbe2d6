/**
 * The tiny LoRA model the local server trains: forward / forward-backward with the five Tinker losses,
 * AdamW steps, and bit-exact (de)serialisation of adapter weights and optimizer state as safetensors.
 * All arithmetic is float64 with a fixed evaluation order, so identical inputs give bit-identical outputs.
 *
 * @module
 */

import type { Buffer } from "node:buffer";
import { prepareBatch, resolveConfig, validateAdamParams, type PreparedBatch } from "./inputs.js";
import { tokenLoss, type LossFn, type TokenInputs } from "./losses.js";
import { Cursor, MODULE_PATHS, TinyNet } from "./net.js";
import { adamwStep } from "./optimizer.js";
import { parseSafetensors, writeSafetensors } from "./safetensors.js";
import { HIDDEN_SIZE } from "./kernels.js";
import type { Factorization } from "./vocab.js";
import {
  ModelInputError,
  shapeStr,
  WEIGHTS_FORMAT,
  type AdamParams,
  type Datum,
  type ForwardBackwardOutput,
  type OutputTensor,
  type SafetensorsTensor,
  type TinyModelConfig,
  type TinyModelOptions,
} from "./types.js";

/** A tiny LoRA-adapted causal language model with an AdamW optimizer. */
export interface TinyLoraModel {
  /** The resolved model configuration. */
  readonly config: TinyModelConfig;
  /** How the vocabulary is factored into classes × slots. */
  readonly vocab: Factorization;
  /** Number of optimizer steps taken so far (0 for a fresh or reset optimizer). */
  readonly optimizerStep: number;
  /** Names of the trainable tensors, in export order. */
  readonly tensorNames: readonly string[];
  /** Validates `data`, runs the loss and accumulates gradients into the trainable tensors. */
  forwardBackward(data: Datum[], lossFn: LossFn, lossFnConfig?: Record<string, number> | null): ForwardBackwardOutput;
  /** Validates `data` and runs the loss without touching the accumulated gradients (`forward_only`). */
  forward(data: Datum[], lossFn: LossFn, lossFnConfig?: Record<string, number> | null): ForwardBackwardOutput;
  /** Runs a batch validated by `prepareBatch`; with `forwardOnly` nothing is accumulated. */
  run(batch: PreparedBatch, options?: { forwardOnly?: boolean }): ForwardBackwardOutput;
  /** Applies one AdamW step using the accumulated gradients, then clears them. */
  optimStep(params: AdamParams): { metrics: Record<string, number> };
  /** Serializes the LoRA adapter weights as a safetensors file. */
  exportWeights(): Buffer;
  /** Serializes the optimizer state (exp_avg, exp_avg_sq, step) as a safetensors file. */
  exportOptimizer(): Buffer;
  /** Restores the LoRA adapter weights bit-exactly and clears accumulated gradients. */
  importWeights(buf: Buffer): void;
  /** Restores the optimizer moments and step count bit-exactly. */
  importOptimizer(buf: Buffer): void;
  /** Zeroes the optimizer moments, the step count and the accumulated gradients. */
  resetOptimizer(): void;
  /** Returns copies of the accumulated gradients keyed by tensor name (for tests and debugging). */
  gradients(): Map<string, Float64Array>;
  /** A new cursor over the current weights, for scoring and sampling one sequence (see `sampling.ts`). */
  cursor(): Cursor;
}

class TinyModel implements TinyLoraModel {
  readonly config: TinyModelConfig;
  readonly vocab: Factorization;
  readonly tensorNames: readonly string[];
  readonly #net: TinyNet;
  readonly #cursor: Cursor;
  #step = 0;
  #coefs = new Float64Array(1);

  constructor(config: TinyModelConfig) {
    this.config = config;
    this.#net = new TinyNet(config);
    this.vocab = this.#net.f;
    this.#cursor = new Cursor(this.#net);
    this.tensorNames = Object.freeze(this.#net.params.map((p) => p.name));
  }

  get optimizerStep(): number {
    return this.#step;
  }

  cursor(): Cursor {
    return new Cursor(this.#net);
  }

  run(batch: PreparedBatch, options: { forwardOnly?: boolean } = {}): ForwardBackwardOutput {
    if (batch.vocabSize !== this.config.vocabSize) {
      throw new ModelInputError(
        `data: validated for a vocabulary of ${batch.vocabSize} ids, but the model has ${this.config.vocabSize}`,
        "data",
      );
    }
    const backward = options.forwardOnly !== true;
    const net = this.#net;
    const cur = this.#cursor;
    const cfg = batch.loss;
    net.refresh();
    if (backward) net.zeroEffGrads();
    const tin: TokenInputs = { w: 0, q: 0, adv: 0, lo: 0, hi: 0 };
    const g = new Float64Array(1);
    let total = 0;
    const outputs: Array<Record<string, OutputTensor>> = [];
    for (const { tokens, k, targets, weights, q, adv, lo, hi, shape } of batch.datums) {
      if (this.#coefs.length < k) this.#coefs = new Float64Array(k);
      const coefs = this.#coefs;
      const n = tokens.length;
      const lps = new Array<number>(n * k);
      cur.reset();
      for (let i = 0; i < n; i++) {
        cur.push(tokens[i]!);
        if (q) tin.q = q[i]!;
        if (adv) tin.adv = adv[i]!;
        if (lo) tin.lo = lo[i]!;
        if (hi) tin.hi = hi[i]!;
        let any = false;
        for (let j = 0, idx = i * k; j < k; j++, idx++) {
          const lp = cur.logprob(targets[idx]!);
          lps[idx] = Math.fround(lp);
          if (weights) tin.w = weights[idx]!;
          total += tokenLoss(cfg, lp, tin, g);
          coefs[j] = g[0]!;
          if (g[0] !== 0) any = true;
        }
        if (backward && any) cur.backward(targets, i * k, coefs, k);
      }
      outputs.push({ logprobs: { data: lps, dtype: "float32", shape: [...shape] } });
    }
    if (backward) net.accumulateLoraGrads();
    return { loss_fn_output_type: "TensorData", loss_fn_outputs: outputs, metrics: { "loss:sum": total } };
  }

  forwardBackward(data: Datum[], lossFn: LossFn, lossFnConfig?: Record<string, number> | null): ForwardBackwardOutput {
    return this.run(prepareBatch(data, lossFn, lossFnConfig, this.config.vocabSize));
  }

  forward(data: Datum[], lossFn: LossFn, lossFnConfig?: Record<string, number> | null): ForwardBackwardOutput {
    return this.run(prepareBatch(data, lossFn, lossFnConfig, this.config.vocabSize), { forwardOnly: true });
  }

  optimStep(params: AdamParams): { metrics: Record<string, number> } {
    const adam = validateAdamParams(params);
    const t = this.#step + 1;
    const norm = adamwStep(this.#net.params, t, adam);
    this.#net.invalidate();
    this.#step = t;
    return { metrics: { grad_norm: norm, learning_rate: adam.learning_rate, step: t } };
  }

  #weightsMetadata(): Record<string, string> {
    const c = this.config;
    return {
      format: WEIGHTS_FORMAT,
      base_model: c.baseModel,
      rank: String(c.rank),
      alpha: String(c.alpha),
      seed: String(c.seed),
      train_attn: String(c.trainAttn),
      train_mlp: String(c.trainMlp),
      train_unembed: String(c.trainUnembed),
      vocab_size: String(c.vocabSize),
      class_size: String(this.vocab.classSize),
      num_classes: String(this.vocab.numClasses),
      hidden_size: String(HIDDEN_SIZE),
    };
  }

  exportWeights(): Buffer {
    const tensors = new Map<string, SafetensorsTensor>();
    for (const p of this.#net.params) tensors.set(p.name, { shape: [...p.shape], data: p.data });
    return writeSafetensors(tensors, this.#weightsMetadata());
  }

  exportOptimizer(): Buffer {
    const tensors = new Map<string, SafetensorsTensor>();
    for (const p of this.#net.params) {
      tensors.set(`${p.name}.exp_avg`, { shape: [...p.shape], data: p.expAvg });
      tensors.set(`${p.name}.exp_avg_sq`, { shape: [...p.shape], data: p.expAvgSq });
    }
    return writeSafetensors(tensors, { step: String(this.#step) });
  }

  /** Checks that `tensors` holds exactly `expected` (name → shape) with finite values. */
  #checkTensorSet(
    what: string,
    tensors: Map<string, SafetensorsTensor>,
    expected: Array<{ name: string; shape: readonly number[] }>,
  ): void {
    const expectedNames = new Set(expected.map((e) => e.name));
    for (const { name, shape } of expected) {
      const t = tensors.get(name);
      if (t === undefined) {
        const trains = [...new Set(this.#net.modules.map((m) => MODULE_PATHS[m.kind].target))].join(", ");
        throw new ModelInputError(`${what}: missing tensor "${name}" (this model trains ${trains})`, what);
      }
      if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i])) {
        throw new ModelInputError(
          `${what}: tensor "${name}" has shape ${shapeStr(t.shape)}, expected ${shapeStr(shape)} (rank ${this.config.rank}, vocabulary ${this.config.vocabSize})`,
          what,
        );
      }
      for (let i = 0; i < t.data.length; i++) {
        if (!Number.isFinite(t.data[i]!))
          throw new ModelInputError(`${what}: tensor "${name}" contains a non-finite value at index ${i}`, what);
      }
    }
    for (const name of tensors.keys()) {
      if (!expectedNames.has(name))
        throw new ModelInputError(`${what}: unexpected tensor "${name}" (not a trainable tensor of this model)`, what);
    }
  }

  importWeights(buf: Buffer): void {
    const { tensors, metadata } = parseSafetensors(buf);
    const c = this.config;
    const bad = (msg: string): never => {
      throw new ModelInputError(`weights: ${msg}`, "weights");
    };
    checkFormat(metadata);
    if (metadata.base_model !== undefined && metadata.base_model !== c.baseModel) {
      bad(`base_model mismatch: checkpoint has ${JSON.stringify(metadata.base_model)}, model has ${JSON.stringify(c.baseModel)}`);
    }
    if (metadata.rank !== undefined && metadata.rank !== String(c.rank))
      bad(`rank mismatch: checkpoint has rank ${metadata.rank}, model has rank ${c.rank}`);
    if (metadata.alpha !== undefined && Number(metadata.alpha) !== c.alpha)
      bad(`alpha mismatch: checkpoint has alpha ${metadata.alpha}, model has alpha ${c.alpha}`);
    if (metadata.vocab_size !== undefined && metadata.vocab_size !== String(c.vocabSize)) {
      bad(`vocab_size mismatch: checkpoint has ${metadata.vocab_size} ids, model has ${c.vocabSize}`);
    }
    for (const [key, flag] of [
      ["train_attn", c.trainAttn],
      ["train_mlp", c.trainMlp],
      ["train_unembed", c.trainUnembed],
    ] as const) {
      const v = metadata[key];
      if (v !== undefined && v !== String(flag)) bad(`module mismatch: checkpoint has ${key}=${v}, model has ${key}=${String(flag)}`);
    }
    this.#checkTensorSet(
      "weights",
      tensors,
      this.#net.params.map((p) => ({ name: p.name, shape: p.shape })),
    );
    for (const p of this.#net.params) {
      p.data.set(tensors.get(p.name)!.data);
      p.grad.fill(0);
    }
    this.#net.invalidate();
  }

  importOptimizer(buf: Buffer): void {
    const { tensors, metadata } = parseSafetensors(buf);
    const params = this.#net.params;
    this.#checkTensorSet(
      "optimizer",
      tensors,
      params.flatMap((p) => [
        { name: `${p.name}.exp_avg`, shape: p.shape },
        { name: `${p.name}.exp_avg_sq`, shape: p.shape },
      ]),
    );
    const stepStr = metadata.step;
    if (stepStr === undefined || !/^(0|[1-9][0-9]*)$/.test(stepStr) || !Number.isSafeInteger(Number(stepStr))) {
      throw new ModelInputError(`optimizer: metadata "step" must be a non-negative integer, got ${JSON.stringify(stepStr)}`, "optimizer");
    }
    for (const p of params) {
      const sqData = tensors.get(`${p.name}.exp_avg_sq`)!.data;
      for (let i = 0; i < sqData.length; i++) {
        if (sqData[i]! < 0)
          throw new ModelInputError(`optimizer: tensor "${p.name}.exp_avg_sq" has a negative value at index ${i}`, "optimizer");
      }
    }
    for (const p of params) {
      p.expAvg.set(tensors.get(`${p.name}.exp_avg`)!.data);
      p.expAvgSq.set(tensors.get(`${p.name}.exp_avg_sq`)!.data);
    }
    this.#step = Number(stepStr);
  }

  resetOptimizer(): void {
    for (const p of this.#net.params) {
      p.expAvg.fill(0);
      p.expAvgSq.fill(0);
      p.grad.fill(0);
    }
    this.#step = 0;
  }

  gradients(): Map<string, Float64Array> {
    return new Map(this.#net.params.map((p) => [p.name, Float64Array.from(p.grad)]));
  }
}

/** Rejects weights written in another format (v1 had a 256-token vocabulary and one lm_head matrix). */
function checkFormat(metadata: Record<string, string>): void {
  const format = metadata.format;
  if (format !== undefined && format !== WEIGHTS_FORMAT) {
    throw new ModelInputError(
      `weights: format ${JSON.stringify(format)} is not ${JSON.stringify(WEIGHTS_FORMAT)}` +
        (format === "tinker-ts.tiny-lora.v1"
          ? " (written by an older tinker-ts whose tiny model had a 256-token vocabulary; train a new checkpoint)"
          : ""),
      "weights",
    );
  }
}

/**
 * Creates a tiny LoRA model with deterministic base weights derived from `baseModel`.
 *
 * The vocabulary is the base model's (see `vocabForBaseModel`) unless `vocabSize` is given. LoRA A matrices
 * are initialised uniformly in ±1/sqrt(in) from `seed` (default 0), B matrices are zero, and the adapter
 * scaling is `alpha / rank` with `alpha` defaulting to 32. Throws {@link ModelInputError} on invalid options.
 *
 * @example
 * ```ts
 * const model = createTinyModel({ baseModel: "Qwen/Qwen3-8B", rank: 8, trainAttn: true, trainMlp: true, trainUnembed: true });
 * const datum: Datum = {
 *   model_input: { chunks: [{ type: "encoded_text", tokens: [151644, 872, 198] }] },
 *   loss_fn_inputs: {
 *     target_tokens: { data: [872, 198, 151645], dtype: "int64" },
 *     weights: { data: [0, 1, 1], dtype: "float32" },
 *   },
 * };
 * const out = model.forwardBackward([datum], "cross_entropy");
 * model.optimStep({ learning_rate: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0, grad_clip_norm: 0 });
 * console.log(out.metrics["loss:sum"], model.exportWeights().length);
 * ```
 */
export function createTinyModel(opts: TinyModelOptions): TinyLoraModel {
  return new TinyModel(resolveConfig(opts));
}

/**
 * Reads the model configuration stored in the metadata of exported adapter weights.
 *
 * @example
 * ```ts
 * const config = readWeightsConfig(model.exportWeights()); // deep-equals model.config
 * ```
 */
export function readWeightsConfig(buf: Buffer): TinyModelConfig {
  const { metadata } = parseSafetensors(buf);
  checkFormat(metadata);
  const need = (key: string): string => {
    const v = metadata[key];
    if (v === undefined) throw new ModelInputError(`weights: metadata is missing "${key}"`, "weights");
    return v;
  };
  const bool = (key: string): boolean => {
    const v = need(key);
    if (v !== "true" && v !== "false") throw new ModelInputError(`weights: metadata "${key}" must be "true" or "false"`, "weights");
    return v === "true";
  };
  const numeric = (key: string): number => {
    const v = need(key);
    const n = Number(v);
    if (v.trim() === "" || !Number.isFinite(n)) throw new ModelInputError(`weights: metadata "${key}" must be a number`, "weights");
    return n;
  };
  return resolveConfig({
    baseModel: need("base_model"),
    rank: numeric("rank"),
    alpha: numeric("alpha"),
    seed: metadata.seed === undefined ? 0 : numeric("seed"),
    trainAttn: bool("train_attn"),
    trainMlp: bool("train_mlp"),
    trainUnembed: bool("train_unembed"),
    ...(metadata.vocab_size === undefined ? {} : { vocabSize: numeric("vocab_size") }),
  });
}

/**
 * Builds a model from exported adapter weights (config from their metadata, then the weights).
 *
 * @example
 * ```ts
 * const sampler = loadTinyModel(trained.exportWeights()); // same outputs as `trained`
 * ```
 */
export function loadTinyModel(buf: Buffer): TinyLoraModel {
  const model = createTinyModel(readWeightsConfig(buf));
  model.importWeights(buf);
  return model;
}

/**
 * Builds a PEFT-like `adapter_config.json` object describing the model's LoRA adapter.
 *
 * @example
 * ```ts
 * adapterConfigJson(model.config).target_modules; // ["self_attn", "mlp", "lm_head"]
 * ```
 */
export function adapterConfigJson(
  config: Pick<TinyModelConfig, "baseModel" | "rank" | "alpha" | "trainAttn" | "trainMlp" | "trainUnembed">,
): Record<string, unknown> {
  const targets: string[] = [];
  if (config.trainAttn) targets.push(MODULE_PATHS.attn.target);
  if (config.trainMlp) targets.push(MODULE_PATHS.mlp.target);
  if (config.trainUnembed) targets.push(MODULE_PATHS.class_head.target);
  return {
    base_model_name_or_path: config.baseModel,
    r: config.rank,
    lora_alpha: config.alpha,
    target_modules: targets,
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    lora_dropout: 0,
    bias: "none",
    fan_in_fan_out: false,
    inference_mode: true,
  };
}
