/**
 * Shared types, constants and the input error of the tiny model.
 *
 * @module
 */

/** Largest LoRA rank accepted by the tiny model. */
export const MAX_LORA_RANK = 256;

/** Default LoRA alpha (the PEFT / Tinker default); the adapter scaling is `alpha / rank`. */
export const DEFAULT_LORA_ALPHA = 32;

/**
 * Value of the `format` metadata entry written into exported adapter weights. v2 is the factored-output
 * model with the base model's real vocabulary; v1 (a 256-token vocabulary) checkpoints cannot be loaded.
 */
export const WEIGHTS_FORMAT = "tinker-ts.tiny-lora.v2";

/**
 * Error raised for invalid model inputs, hyper-parameters, or incompatible checkpoint files.
 * `field` names the offending input relative to the call (e.g. `data[2].loss_fn_inputs.weights`), when there
 * is one; the message always starts with it.
 *
 * @example
 * ```ts
 * try { model.forwardBackward([], "cross_entropy"); } catch (err) {
 *   if (err instanceof ModelInputError) console.log(err.field, err.message); // "data", "data: must be ..."
 * }
 * ```
 */
export class ModelInputError extends Error {
  readonly field: string | undefined;
  constructor(message: string, field?: string) {
    super(message);
    this.name = "ModelInputError";
    this.field = field;
  }
}

/** Values of a tensor: a plain array (JSON wire) or a typed array (decoded protobuf; int64 may be bigint). */
export type NumericArray = ArrayLike<number> | ArrayLike<bigint> | ArrayLike<number | bigint>;

/**
 * A tensor as it travels over the Tinker wire (dense, or CSR when `sparse_crow_indices` and
 * `sparse_col_indices` are present: then `data` holds the non-zero values and `shape` the dense shape).
 */
export type TensorData = {
  data: NumericArray;
  dtype: "int64" | "float32";
  shape?: number[] | null;
  sparse_crow_indices?: NumericArray | null;
  sparse_col_indices?: NumericArray | null;
};

/** One chunk of model input; only encoded text is supported by the tiny model. */
export type ModelInputChunk = { type: "encoded_text"; tokens: NumericArray };

/** One training example: input tokens plus per-position loss inputs. */
export type Datum = {
  model_input: { chunks: ModelInputChunk[] };
  loss_fn_inputs: { target_tokens: TensorData; weights?: TensorData; [k: string]: TensorData | undefined };
};

/** A tensor the model returns (always dense). */
export type OutputTensor = { data: number[]; dtype: "float32" | "int64"; shape: number[] };

/** Result of a forward or forward-backward pass. */
export type ForwardBackwardOutput = {
  loss_fn_output_type: string;
  loss_fn_outputs: Array<Record<string, OutputTensor>>;
  metrics: Record<string, number>;
};

/** AdamW hyper-parameters accepted by `optimStep`. */
export type AdamParams = {
  learning_rate: number;
  beta1: number;
  beta2: number;
  eps: number;
  weight_decay: number;
  grad_clip_norm: number;
};

/** Options accepted by `createTinyModel`. */
export type TinyModelOptions = {
  /** Base model name; its hash seeds the frozen base weights and it selects the vocabulary. */
  baseModel: string;
  /** LoRA rank, an integer in [1, {@link MAX_LORA_RANK}]. */
  rank: number;
  /** Seed for the LoRA A initialisation (default 0). */
  seed?: number;
  /** Train a LoRA adapter on the attention mixing matrix. */
  trainAttn: boolean;
  /** Train a LoRA adapter on the MLP input matrix. */
  trainMlp: boolean;
  /** Train LoRA adapters on the two output factors (lm_head). */
  trainUnembed: boolean;
  /** LoRA alpha (default {@link DEFAULT_LORA_ALPHA}); scaling is alpha / rank. */
  alpha?: number;
  /** Vocabulary size (default: the base model's, see `vocabForBaseModel`). */
  vocabSize?: number;
};

/** Fully resolved, immutable model configuration. */
export type TinyModelConfig = Readonly<{
  baseModel: string;
  rank: number;
  seed: number;
  alpha: number;
  trainAttn: boolean;
  trainMlp: boolean;
  trainUnembed: boolean;
  vocabSize: number;
}>;

/** A float64 tensor as stored in a safetensors file. */
export type SafetensorsTensor = { shape: number[]; data: Float64Array };

/** The decoded contents of a safetensors file. */
export type ParsedSafetensors = {
  tensors: Map<string, SafetensorsTensor>;
  metadata: Record<string, string>;
};

/** True for a plain (non-array) object. */
export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** `[a, b, c]` */
export function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}
