/**
 * TrainingClient: training-ordered operations on one LoRA model (a training run).
 *
 * @module
 */
import type { z } from "zod";
import type { components } from "../generated/schema.js";
import type { APIFuture, ProtobufResult } from "./core/futures.js";
import { decodeForwardBackwardOutput, encodeForwardBackwardRequest } from "./internal/proto/forward-backward.js";
import { submitFuture, type SubmitContext } from "./internal/submit.js";
import { ConflictError, InvalidArgumentError, ResponseValidationError } from "./core/errors.js";
import {
  ForwardBackwardOutputSchema,
  GetInfoResponseSchema,
  LoadWeightsResponseSchema,
  OptimStepResponseSchema,
  SaveWeightsForSamplerResponseInternalSchema,
  SaveWeightsForSamplerResponseSchema,
  SaveWeightsResponseSchema,
  UnloadModelResponseSchema,
} from "./internal/schemas.js";
import { SeqGate } from "./internal/seq.js";
import { checkConcurrency, SamplingClient, type SamplingContext } from "./sampling-client.js";
import { validateTtlSeconds } from "./core/ttl.js";
import { formatTinkerPath, parseTinkerPath, validateCheckpointName } from "./core/tinker-path.js";
import type { RequestInitExtras } from "./internal/transport.js";
import { callOptionsOf, type RequestOptions } from "./core/options.js";

type Schemas = components["schemas"];
/** One training example: model input tokens and the loss function's inputs (wire type). */
export type Datum = Schemas["Datum"];
/** A tensor on the wire: flat `data`, `dtype` and optional `shape`. */
export type TensorData = Schemas["TensorData"];
/** Loss functions the service knows. The local server implements `cross_entropy`. */
export type LossFnType = Schemas["LossFnType"];
/** Adam hyper-parameters of an optimizer step (wire type; only `learning_rate` is required). */
export type AdamParams = Schemas["AdamParams"];
/** Result of `forwardBackward`: per-datum outputs (e.g. `logprobs`) and `metrics` (e.g. `loss:sum`). */
export type ForwardBackwardOutput = Schemas["ForwardBackwardOutput"];
/** Result of `optimStep`. */
export type OptimStepResponse = Schemas["OptimStepResponse"];
/** Result of `saveState`: the checkpoint's `tinker://` path. */
export type SaveWeightsResponse = Schemas["SaveWeightsResponse"];
/** Result of `loadState` / `loadStateWithOptimizer`. */
export type LoadWeightsResponse = Schemas["LoadWeightsResponse"];
/** Result of `saveWeightsForSampler`: the sampler checkpoint's `tinker://` path. */
export type SaveWeightsForSamplerResponse = Schemas["SaveWeightsForSamplerResponse"];
/** Result of `getInfo`. */
export type GetInfoResponse = Schemas["GetInfoResponse"];
/** Result of `unload`. */
export type UnloadModelResponse = Schemas["UnloadModelResponse"];

/** Options every training operation takes. */
export interface TrainingCallOptions extends RequestOptions {
  /** Aborts the submit (if not sent yet) and waiting on the future via `await`. */
  signal?: AbortSignal;
  /** Per-attempt HTTP time limit of the submit, in ms. Use `future.result({ timeoutMs })` to bound the wait. */
  timeoutMs?: number;
}

/** Options of {@link TrainingClient.forwardBackward}. */
export interface ForwardBackwardOptions extends TrainingCallOptions {
  /** Extra loss parameters, sent as `loss_fn_config`. */
  lossFnConfig?: Record<string, number>;
}

/** Options of {@link TrainingClient.saveState}. */
export interface SaveStateOptions extends TrainingCallOptions {
  /** Seconds until the checkpoint expires (integer ≥ 3600). Omit to keep it until deleted. */
  ttlSeconds?: number;
  /** Replace an existing checkpoint of the same name (default false: a {@link ConflictError}). */
  overwrite?: boolean;
}

/** Options of {@link TrainingClient.saveWeightsForSampler}. */
export interface SaveWeightsForSamplerOptions extends TrainingCallOptions {
  /** Seconds until the checkpoint expires (integer ≥ 3600). */
  ttlSeconds?: number;
}

/** Options of {@link TrainingClient.loadState} and {@link TrainingClient.loadStateWithOptimizer}. */
export interface LoadStateOptions extends TrainingCallOptions {
  /** Token granting access to another user's checkpoint, when needed. */
  weightsAccessToken?: string;
}

/** @internal What a training client shares with its service client. */
export type TrainingClientContext = SubmitContext & {
  /** The sampling side of the service client: its shared context and the session's sampling counter (§10.4). */
  sampling?: { context: SamplingContext; nextSeq: () => number };
};

/** Options of {@link TrainingClient.saveWeightsAndGetSamplingClient}. */
export interface SaveAndGetSamplingClientOptions extends TrainingCallOptions {
  /** Sample requests in flight at once on the new client (default 400). */
  maxConcurrentRequests?: number;
}

/**
 * A LoRA model being trained. Get one from `ServiceClient.createLoraTrainingClient` or the
 * `createTrainingClientFromState*` helpers.
 *
 * Every training operation takes its `seq_id` synchronously when called, so calling several before awaiting
 * any is safe: the service runs them in call order. A checkpoint captures exactly the operations with a lower
 * `seqId` on this client.
 *
 * @example
 * ```ts
 * const fb = training.forwardBackward(batch, "cross_entropy");
 * const step = training.optimStep({ learning_rate: 1e-4 });
 * const save = training.saveState("step-0001", { ttlSeconds: 7 * 86_400 });
 * console.log((await fb).metrics["loss:sum"], (await save).path); // save holds fb and step
 * ```
 */
export class TrainingClient {
  /** The model id, which is also the training run id in `tinker://<id>/weights/<name>` paths. */
  readonly modelId: string;
  /** The base model, e.g. `"Qwen/Qwen3-8B"`. */
  readonly baseModel: string;
  readonly #ctx: TrainingClientContext;
  readonly #seq = new SeqGate(1);

  /** @internal Use the ServiceClient factories. */
  constructor(ctx: TrainingClientContext, init: { modelId: string; baseModel: string }) {
    this.#ctx = ctx;
    this.modelId = init.modelId;
    this.baseModel = init.baseModel;
  }

  /** The seq_id the next training operation will get. */
  get nextSeqId(): number {
    return this.#seq.peek;
  }

  /**
   * Computes the loss on a batch and accumulates gradients (applied by the next {@link optimStep}).
   *
   * @throws {InvalidArgumentError} before sending, when `data` is empty or malformed.
   * @example
   * ```ts
   * const out = await training.forwardBackward([crossEntropyDatum([1, 2, 3, 4])], "cross_entropy");
   * console.log(out.metrics["loss:sum"]);
   * ```
   */
  forwardBackward(data: Datum[], lossFn: LossFnType, options: ForwardBackwardOptions = {}): APIFuture<ForwardBackwardOutput> {
    return this.#forwardBackwardChunk("forwardBackward", data, lossFn, options, false);
  }

  /**
   * Computes the loss and per-datum outputs (e.g. `logprobs`) on a batch **without** accumulating gradients
   * (`forward_only`): the model and the next {@link optimStep} are unaffected. It is ordered like every
   * training operation (it takes a seq_id).
   *
   * @throws {InvalidArgumentError} before sending, when `data` is empty or malformed.
   * @example
   * ```ts
   * const out = await training.forward([crossEntropyDatum([1, 2, 3, 4])], "cross_entropy");
   * console.log(out.loss_fn_outputs[0]?.["logprobs"]?.data);
   * ```
   */
  forward(data: Datum[], lossFn: LossFnType, options: ForwardBackwardOptions = {}): APIFuture<ForwardBackwardOutput> {
    return this.#forwardBackwardChunk("forward", data, lossFn, options, true);
  }

  /**
   * One forward / forward_backward request (one chunk: one encode, one seq_id, one submit, one poll), sent as
   * protobuf (PROTOCOL §10.1) and polled with `Accept: application/x-protobuf`. The body is encoded before the
   * seq_id is taken, so a datum that cannot be encoded throws at once and uses no seq_id.
   */
  #forwardBackwardChunk(
    method: "forward" | "forwardBackward",
    data: Datum[],
    lossFn: LossFnType,
    options: ForwardBackwardOptions,
    forwardOnly: boolean,
  ): APIFuture<ForwardBackwardOutput> {
    validateData(data, method);
    const seqId = this.#seq.peek;
    const body = encodeForwardBackwardRequest({ modelId: this.modelId, seqId, data, lossFn, lossFnConfig: options.lossFnConfig, forwardOnly });
    const protobuf = {
      headers: { accept: PROTOBUF_MEDIA_TYPE, requestType: forwardOnly ? "Forward" : "ForwardBackward" },
      decode: decodeForwardBackwardOutput,
    };
    return this.#submitOrdered(
      forwardOnly ? "forward" : "forward_backward",
      ForwardBackwardOutputSchema,
      options,
      (seq, init) => {
        if (seq !== seqId) throw new Error(`internal error: ${method} encoded seq_id ${seqId} but took ${seq}`);
        return this.#ctx.transport.api.POST("/api/v1/forward_backward", {
          ...init,
          body: body as never,
          bodySerializer: (b: unknown) => b as never,
          headers: { ...init.headers, "Content-Type": PROTOBUF_MEDIA_TYPE },
        });
      },
      undefined,
      protobuf,
    );
  }

  /**
   * Applies one Adam step with the gradients accumulated since the last step.
   *
   * @throws {InvalidArgumentError} before sending, when `learning_rate` is missing or not a finite number ≥ 0.
   * @example
   * ```ts
   * await training.optimStep({ learning_rate: 1e-4, beta1: 0.9, beta2: 0.95, eps: 1e-12 });
   * ```
   */
  optimStep(adamParams: AdamParams, options: TrainingCallOptions = {}): APIFuture<OptimStepResponse> {
    if (typeof adamParams !== "object" || adamParams === null) {
      throw new InvalidArgumentError("optimStep needs adamParams, e.g. { learning_rate: 1e-4 }.");
    }
    for (const [key, value] of Object.entries(adamParams)) {
      if (typeof value !== "number" || !Number.isFinite(value)) {
        throw new InvalidArgumentError(`adamParams.${key} must be a finite number, got ${String(value)}.`);
      }
    }
    if (!(adamParams.learning_rate >= 0)) {
      throw new InvalidArgumentError(`adamParams.learning_rate must be a number ≥ 0, got ${String(adamParams.learning_rate)}.`);
    }
    const adam_params: AdamParams = { beta1: 0.9, beta2: 0.95, eps: 1e-12, weight_decay: 0, grad_clip_norm: 0, ...adamParams };
    return this.#submitOrdered("optim_step", OptimStepResponseSchema, options, (seq, init) =>
      this.#ctx.transport.api.POST("/api/v1/optim_step", {
        body: { adam_params, model_id: this.modelId, seq_id: seq, type: "optim_step" },
        ...init,
      }),
    );
  }

  /**
   * Saves a training checkpoint (weights and optimizer state) named `name`. It captures every operation with
   * a lower `seqId` on this client, and nothing submitted after it.
   *
   * @throws {InvalidCheckpointNameError} / {@link InvalidArgumentError} before sending, for a bad name or TTL.
   * @throws {ConflictError} (from the future) when the name exists and `overwrite` is not set; never retried.
   * @example
   * ```ts
   * const { path } = await training.saveState("epoch-3", { ttlSeconds: 30 * 86_400 });
   * // path === `tinker://${training.modelId}/weights/epoch-3`
   * ```
   */
  saveState(name: string, options: SaveStateOptions = {}): APIFuture<SaveWeightsResponse> {
    validateCheckpointName(name);
    validateTtlSeconds(options.ttlSeconds);
    const overwrite = options.overwrite ?? false;
    if (typeof overwrite !== "boolean") throw new InvalidArgumentError(`overwrite must be a boolean, got ${String(overwrite)}.`);
    const path = formatTinkerPath(this.modelId, "weights", name);
    return this.#submitOrdered(
      "save_weights",
      SaveWeightsResponseSchema,
      options,
      (seq, init) =>
        this.#ctx.transport.api.POST("/api/v1/save_weights", {
          body: {
            model_id: this.modelId,
            path: name,
            seq_id: seq,
            ...(options.ttlSeconds === undefined ? {} : { ttl_seconds: options.ttlSeconds }),
            overwrite,
            type: "save_weights",
          },
          ...init,
        }),
      (err) =>
        err instanceof ConflictError
          ? new ConflictError({
              status: err.status,
              headers: err.headers,
              body: err.body,
              method: err.method,
              url: err.url,
              message: `Checkpoint ${path} already exists. Pass { overwrite: true } to saveState to replace it, or choose another name.`,
            })
          : err,
    );
  }

  /**
   * Loads a training checkpoint's weights. The optimizer state is reset (fresh Adam moments): use this to
   * warm-start or change hyper-parameters. To resume exactly, use {@link loadStateWithOptimizer}.
   *
   * @throws {InvalidTinkerPathError} / {@link InvalidArgumentError} before sending, for an invalid path or a
   *   `sampler_weights` path (sampler checkpoints hold no training state).
   * @example
   * ```ts
   * await training.loadState("tinker://run-1/weights/epoch-3");
   * ```
   */
  loadState(path: string, options: LoadStateOptions = {}): APIFuture<LoadWeightsResponse> {
    return this.#load(path, false, options);
  }

  /**
   * Loads a training checkpoint's weights **and** optimizer state (Adam moments and step count), to resume
   * training exactly where the checkpoint was taken.
   *
   * @throws {InvalidTinkerPathError} / {@link InvalidArgumentError} before sending, for an invalid path or a
   *   `sampler_weights` path.
   * @example
   * ```ts
   * await training.loadStateWithOptimizer("tinker://run-1/weights/epoch-3");
   * ```
   */
  loadStateWithOptimizer(path: string, options: LoadStateOptions = {}): APIFuture<LoadWeightsResponse> {
    return this.#load(path, true, options);
  }

  /**
   * Saves the current weights for sampling (no optimizer state) under `sampler_weights/<name>`.
   *
   * @throws {InvalidCheckpointNameError} / {@link InvalidArgumentError} before sending.
   * @example
   * ```ts
   * const { path } = await training.saveWeightsForSampler("final");
   * ```
   */
  saveWeightsForSampler(name: string, options: SaveWeightsForSamplerOptions = {}): APIFuture<SaveWeightsForSamplerResponse> {
    validateCheckpointName(name);
    validateTtlSeconds(options.ttlSeconds);
    // The schema requires `path`: a named sampler save that completes without one is a ResponseValidationError.
    return this.#submitOrdered("save_weights_for_sampler", SaveWeightsForSamplerResponseSchema, options, (seq, init) =>
      this.#ctx.transport.api.POST("/api/v1/save_weights_for_sampler", {
        body: {
          model_id: this.modelId,
          path: name,
          seq_id: seq,
          ...(options.ttlSeconds === undefined ? {} : { ttl_seconds: options.ttlSeconds }),
          type: "save_weights_for_sampler",
        },
        ...init,
      }),
    );
  }

  /**
   * Saves the current weights for sampling without a name (an unnamed `save_weights_for_sampler` that takes the
   * session's next sampling counter value) and returns a {@link SamplingClient} on them. Like every training
   * operation it takes a seq_id: the sampler sees exactly the operations called before it.
   *
   * @throws {ResponseValidationError} when the server's answer has no `sampling_session_id`.
   * @example
   * ```ts
   * const sampler = await training.saveWeightsAndGetSamplingClient();
   * const res = await sampler.sample([1, 2, 3], 1, { max_tokens: 8, seed: 7 });
   * ```
   */
  async saveWeightsAndGetSamplingClient(options: SaveAndGetSamplingClientOptions = {}): Promise<SamplingClient> {
    const sampling = this.#ctx.sampling;
    if (sampling === undefined) throw new InvalidArgumentError("saveWeightsAndGetSamplingClient needs a training client created by a ServiceClient.");
    checkConcurrency(options.maxConcurrentRequests);
    const samplingSeq = sampling.nextSeq();
    const saved = await this.#submitOrdered("save_weights_for_sampler", SaveWeightsForSamplerResponseInternalSchema, options, (seq, init) =>
      this.#ctx.transport.api.POST("/api/v1/save_weights_for_sampler", {
        body: { model_id: this.modelId, sampling_session_seq_id: samplingSeq, seq_id: seq, type: "save_weights_for_sampler" },
        ...init,
      }),
    );
    if (typeof saved.sampling_session_id !== "string" || saved.sampling_session_id === "") {
      throw new ResponseValidationError({
        body: saved,
        operation: "save_weights_for_sampler",
        reason: "an unnamed sampler save must answer a sampling_session_id",
      });
    }
    return new SamplingClient(sampling.context, {
      samplingSessionId: saved.sampling_session_id,
      modelPath: saved.path ?? null,
      baseModel: this.baseModel,
      maxConcurrentRequests: options.maxConcurrentRequests,
    });
  }

  /**
   * Describes the model (base model, LoRA rank, tokenizer). A direct call: it takes no seq_id.
   *
   * @example
   * ```ts
   * const info = await training.getInfo();
   * console.log(info.model_data.model_name, info.lora_rank);
   * ```
   */
  getInfo(options: TrainingCallOptions = {}): Promise<GetInfoResponse> {
    return this.#ctx.transport.call(
      "get_info",
      (init) => this.#ctx.transport.api.POST("/api/v1/get_info", { body: { model_id: this.modelId, type: "get_info" }, ...init }),
      GetInfoResponseSchema,
      callOptionsOf(options),
    );
  }

  /**
   * Unloads the model on the server, freeing its resources. Saved checkpoints stay.
   *
   * @example
   * ```ts
   * await training.unload();
   * ```
   */
  unload(options: TrainingCallOptions = {}): APIFuture<UnloadModelResponse> {
    return submitFuture(this.#ctx, {
      operation: "unload_model",
      seqId: 0,
      send: (init) => this.#ctx.transport.api.POST("/api/v1/unload_model", { body: { model_id: this.modelId, type: "unload_model" }, ...init }),
      schema: UnloadModelResponseSchema,
      options,
    });
  }

  #load(path: string, optimizer: boolean, options: LoadStateOptions): APIFuture<LoadWeightsResponse> {
    const method = optimizer ? "loadStateWithOptimizer" : "loadState";
    const parsed = parseTinkerPath(path);
    if (parsed.checkpointKind !== "weights") {
      throw new InvalidArgumentError(
        `${method} needs a training checkpoint (tinker://<run>/weights/<name>), but ${path} is a sampler checkpoint: sampler weights hold no optimizer state and cannot seed training. Pass the path that saveState returned.`,
      );
    }
    const token = options.weightsAccessToken;
    return this.#submitOrdered("load_weights", LoadWeightsResponseSchema, options, (seq, init) =>
      this.#ctx.transport.api.POST("/api/v1/load_weights", {
        body: {
          model_id: this.modelId,
          seq_id: seq,
          path,
          optimizer,
          ...(token === undefined ? {} : { weights_access_token: token }),
          type: "load_weights",
        },
        ...init,
      }),
    );
  }

  /**
   * Takes the next seq_id now, submits in seq order (one idempotency key for all attempts of this request, the
   * body — with its seq_id — identical on every retry), then polls the future concurrently.
   */
  #submitOrdered<T>(
    operation: string,
    schema: z.ZodType<T>,
    options: TrainingCallOptions,
    send: (seq: number, init: RequestInitExtras) => ReturnType<RequestFn>,
    mapSubmitError: (err: unknown) => unknown = (err) => err,
    protobuf?: ProtobufResult<T>,
  ): APIFuture<T> {
    const seq = this.#seq.next();
    return submitFuture(this.#ctx, {
      operation,
      seqId: seq,
      send: (init) => send(seq, init),
      schema,
      options,
      gate: (submit) => this.#seq.inTurn(seq, submit),
      mapSubmitError,
      ...(protobuf === undefined ? {} : { protobuf }),
    });
  }
}

type RequestFn = (init: RequestInitExtras) => Promise<{ data?: unknown; error?: unknown; response: Response }>;

/** The media type of protobuf bodies and results. */
const PROTOBUF_MEDIA_TYPE = "application/x-protobuf";


function validateData(data: Datum[], method: string): void {
  if (!Array.isArray(data) || data.length === 0) {
    throw new InvalidArgumentError(`${method} needs a non-empty array of Datum (see crossEntropyDatum).`);
  }
  data.forEach((datum, i) => {
    const chunks = (datum as Partial<Datum> | undefined)?.model_input?.chunks;
    if (!Array.isArray(chunks) || chunks.length === 0) {
      throw new InvalidArgumentError(`data[${i}].model_input.chunks must be a non-empty array of chunks, e.g. { type: "encoded_text", tokens }.`);
    }
    if ((datum.loss_fn_inputs ?? {})["target_tokens"] === undefined) {
      throw new InvalidArgumentError(`data[${i}].loss_fn_inputs.target_tokens is required (every loss function reads it).`);
    }
  });
}

/**
 * Builds a next-token-prediction {@link Datum} from a token sequence: the model reads `tokens[0..n-2]` and
 * predicts `tokens[1..n-1]`, each position weighted by `weights` (default 1).
 *
 * @throws {InvalidArgumentError} when there are fewer than 2 tokens, a token is not a non-negative integer,
 *   or `weights` has the wrong length.
 * @example
 * ```ts
 * const datum = crossEntropyDatum([10, 20, 30, 40]);
 * // model_input tokens [10, 20, 30], target_tokens [20, 30, 40]
 * ```
 */
export function crossEntropyDatum(tokens: readonly number[], options: { weights?: readonly number[] } = {}): Datum {
  if (!Array.isArray(tokens) || tokens.length < 2) {
    throw new InvalidArgumentError("crossEntropyDatum needs at least 2 tokens.");
  }
  tokens.forEach((t, i) => {
    if (!Number.isInteger(t) || t < 0) throw new InvalidArgumentError(`tokens[${i}] must be a non-negative integer, got ${String(t)}.`);
  });
  const n = tokens.length - 1;
  const weights = options.weights ?? new Array<number>(n).fill(1);
  if (weights.length !== n) {
    throw new InvalidArgumentError(`weights must have ${n} entries (one per predicted token), got ${weights.length}.`);
  }
  return {
    model_input: { chunks: [{ type: "encoded_text", tokens: tokens.slice(0, n) }] },
    loss_fn_inputs: {
      target_tokens: { data: tokens.slice(1), dtype: "int64", shape: [n] },
      weights: { data: [...weights], dtype: "float32", shape: [n] },
    },
  };
}
