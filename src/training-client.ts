/**
 * TrainingClient: training-ordered operations on one LoRA model (a training run).
 *
 * @module
 */
import type { z } from "zod";
import type { components } from "./core/wire.js";
import { APIFuture } from "./core/futures.js";
import type { ProtobufResult } from "./internal/poll.js";
import { submitFuture, type SubmitContext } from "./internal/submit.js";
import { APIUserAbortError, ConflictError, InvalidArgumentError, ResponseValidationError } from "./core/errors.js";
import { TrainingClientStoppedError } from "./core/training-errors.js";
import { splitIntoChunks } from "./internal/chunking.js";
import type { ByteBudget, ClientConfig } from "./internal/client-config.js";
import { dispatchChunks, type Dispatched, type SendChunk } from "./internal/fwdbwd.js";
import { customLossDatums, validateData, type CustomLossFn } from "./datums.js";
import { decodeForwardBackwardOutput, encodeForwardBackwardRequest } from "./internal/proto/forward-backward.js";
import { compressFwdbwdBody } from "./internal/zstd.js";
import {
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
import type { RequestOptions } from "./core/options.js";
import { requestOptionsOf } from "./internal/request-options.js";
import { rewordAPIError } from "./internal/reword.js";

type Schemas = components["schemas"];
/** One training example: model input tokens and the loss function's inputs (wire type). */
export type Datum = Schemas["Datum"];
/** A tensor on the wire: flat `data`, `dtype` and optional `shape`. */
export type TensorData = Schemas["TensorData"];
/**
 * Loss functions the service knows (PROTOCOL §11): `cross_entropy`, `importance_sampling`, `ppo`, `cispo`,
 * `dro`. Build their datums with {@link crossEntropyDatum} and {@link rlDatum}.
 */
export type LossFnType = Schemas["LossFnType"];
/** Adam hyper-parameters of an optimizer step (wire type; only `learning_rate` is required). */
export type AdamParams = Schemas["AdamParams"];
/**
 * Result of `forwardBackward`: per-datum outputs (e.g. `logprobs`) and `metrics` (e.g. `loss:sum`). `metrics` is
 * optional on the wire (as in the official SDK); the SDK always fills it, with `{}` when the server sent none.
 */
export type ForwardBackwardOutput = Omit<Schemas["ForwardBackwardOutput"], "metrics"> & { metrics: Record<string, number> };
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

/** Options of {@link TrainingClient.forwardBackward} and {@link TrainingClient.forward}. */
export interface ForwardBackwardOptions extends RequestOptions {
  /**
   * Loss parameters, sent as `loss_fn_config`: `clip_low_threshold` / `clip_high_threshold` for `ppo` (default
   * 0.8 / 1.2) and `cispo` (0 / 4), `beta` for `dro`. Finite numbers only.
   */
  lossFnConfig?: Record<string, number>;
}

/** Options of {@link TrainingClient.forwardBackwardCustom}. */
export type ForwardBackwardCustomOptions = RequestOptions;

/** Options of {@link TrainingClient.saveState}. */
export interface SaveStateOptions extends RequestOptions {
  /** Seconds until the checkpoint expires (integer ≥ 3600). Omit to keep it until deleted. */
  ttlSeconds?: number;
  /** Replace an existing checkpoint of the same name (default false: a {@link ConflictError}). */
  overwrite?: boolean;
}

/** Options of {@link TrainingClient.saveWeightsForSampler}. */
export interface SaveWeightsForSamplerOptions extends RequestOptions {
  /** Seconds until the checkpoint expires (integer ≥ 3600). */
  ttlSeconds?: number;
}

/** Options of {@link TrainingClient.loadState} and {@link TrainingClient.loadStateWithOptimizer}. */
export interface LoadStateOptions extends RequestOptions {
  /** Token granting access to another user's checkpoint, when needed. */
  weightsAccessToken?: string;
}

/** @internal What a training client shares with its service client. */
export interface TrainingClientContext extends SubmitContext {
  /** The ServiceClient's client config (read once). */
  config: ClientConfig;
  /** The ServiceClient's submit byte budget of forward / forward_backward chunks. */
  budget: ByteBudget;
  /** The sampling side of the service client: its shared context and the session's sampling counter (§10.4). */
  sampling?: { context: SamplingContext; nextSeq: () => number };
}

/** Options of {@link TrainingClient.saveWeightsAndGetSamplingClient}. */
export interface SaveAndGetSamplingClientOptions extends RequestOptions {
  /** Sample requests in flight at once on the new client (default: the client config's `sample_max_concurrent_requests`, 2000 unless the service says otherwise). */
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
 * The client is fail-stop: once an operation failed for good (its submit ended without a request id, or a chunk
 * of a split call failed), every operation queued after it rejects, and every new call throws, with a
 * {@link TrainingClientStoppedError} naming it; none of them is sent. Resume from the last checkpoint.
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
   * The batch is split into chunks as the server's client config says (`fwdbwd_max_chunk_len`,
   * `fwdbwd_max_chunk_bytes_count`); each chunk takes its own seq_id, all of them now. The result combines the
   * chunks' results as the official SDK does (outputs in order, metrics by their `:reduction` suffix).
   *
   * @throws {InvalidArgumentError} / {@link InvalidDatumError} before sending, when `data` is empty or malformed.
   * @throws {TrainingClientStoppedError} when an earlier operation failed for good.
   * @example
   * ```ts
   * const out = await training.forwardBackward([crossEntropyDatum([1, 2, 3, 4])], "cross_entropy");
   * console.log(out.metrics["loss:sum"], out.loss_fn_outputs[0]?.["logprobs"]?.data);
   * ```
   */
  forwardBackward(data: Datum[], lossFn: LossFnType, options: ForwardBackwardOptions = {}): APIFuture<ForwardBackwardOutput> {
    return this.#fwdbwd("forward_backward", data, lossFn, options);
  }

  /**
   * Computes the loss and per-token logprobs of a batch **without** accumulating gradients (`forward_only`).
   * Split into chunks like {@link forwardBackward}.
   *
   * @throws {InvalidArgumentError} / {@link InvalidDatumError} before sending, when `data` is empty or malformed.
   * @throws {TrainingClientStoppedError} when an earlier operation failed for good.
   * @example
   * ```ts
   * const out = await training.forward([crossEntropyDatum([1, 2, 3, 4])], "cross_entropy");
   * console.log(out.loss_fn_outputs[0]?.["logprobs"]?.data); // the model is unchanged
   * ```
   */
  forward(data: Datum[], lossFn: LossFnType, options: ForwardBackwardOptions = {}): APIFuture<ForwardBackwardOutput> {
    return this.#fwdbwd("forward", data, lossFn, options);
  }

  /**
   * Trains on a loss you compute in TypeScript from the model's per-token logprobs (PROTOCOL §11.8). It is two
   * plain calls: a {@link forward} with `cross_entropy` (datums without `weights` get zeros), then your `lossFn`
   * gets each datum's logprobs and returns the loss and its gradient with respect to them, then a
   * {@link forwardBackward} with `cross_entropy` and `weights = −grad`, which accumulates exactly your loss's
   * gradient. The result is the second call's, with your `metrics` merged in (its `loss:sum` is the surrogate
   * `Σ grad·logprob`, not your loss).
   *
   * Both calls take their seq_ids now (the forward first, then the forward_backward), so later calls queue
   * after both; the forward_backward is sent once the forward's result and your gradient are in. If the forward
   * or `lossFn` fails (it throws, or returns a malformed gradient), the reserved forward_backward can never be
   * sent: the future rejects with that error and the client stops (fail-stop).
   *
   * Each datum may hold only `target_tokens` and `weights`.
   *
   * @throws {InvalidArgumentError} / {@link InvalidDatumError} before sending, for malformed data.
   * @throws {TrainingClientStoppedError} when an earlier operation failed for good.
   * @example
   * ```ts
   * // −Σ w·logprob: trains exactly like cross_entropy
   * const out = await training.forwardBackwardCustom([crossEntropyDatum([1, 2, 3, 4])], (logprobs) => {
   *   let loss = 0;
   *   const grad = logprobs.map((lp) => lp.map(() => -1));
   *   for (const lp of logprobs) for (const v of lp) loss -= v;
   *   return { loss, grad, metrics: { "custom_loss:sum": loss } };
   * });
   * console.log(out.metrics["custom_loss:sum"]);
   * ```
   */
  forwardBackwardCustom(data: Datum[], lossFn: CustomLossFn, options: ForwardBackwardCustomOptions = {}): APIFuture<ForwardBackwardOutput> {
    if (typeof lossFn !== "function")
      throw new InvalidArgumentError("forwardBackwardCustom needs lossFn: (logprobs: Float32Array[]) => { loss, grad, metrics? }.");
    const custom = customLossDatums(data);
    this.#assertCallable("forward_backward_custom", options);
    const chunks = this.#split(custom.forwardData);
    const forward = this.#fwdbwdChunks("forward", "cross_entropy", {}, options, chunks);
    const k = chunks.length;
    const first = this.#seq.next(k);
    let requestId!: Promise<string>;
    const settled = new Promise<ForwardBackwardOutput>((resolveSettled, rejectSettled) => {
      requestId = this.#seq.inTurn(
        first,
        k,
        async () => {
          let metrics: Record<string, number> = {};
          let dispatched: Dispatched;
          try {
            const out = await forward;
            const step = custom.backwardData(out, lossFn);
            metrics = step.metrics;
            const chunks2 = this.#split(step.data);
            dispatched = await dispatchChunks(this.#dispatchContext(), {
              operation: "forward_backward",
              firstSeqId: first,
              chunks: chunks2,
              ...this.#wire(false, chunks2, first, "cross_entropy", undefined),
              options,
              onFatal: () => undefined,
            });
          } catch (err) {
            this.#seq.stop({ operation: "forward_backward", seqId: first, cause: err });
            throw err;
          }
          dispatched.result.then((r) => resolveSettled({ ...r, metrics: { ...r.metrics, ...metrics } }), rejectSettled);
          return dispatched.requestId;
        },
        () => this.#stoppedError("forward_backward", first),
      );
      requestId.catch(rejectSettled);
    });
    return new APIFuture({
      seqId: forward.seqId,
      operation: "forward_backward_custom",
      requestId,
      settled,
      wait: options.signal === undefined ? {} : { signal: options.signal },
    });
  }

  #fwdbwd(
    operation: "forward" | "forward_backward",
    data: Datum[],
    lossFn: LossFnType,
    options: ForwardBackwardOptions,
  ): APIFuture<ForwardBackwardOutput> {
    validateData(data, lossFn, operation === "forward" ? "forward" : "forwardBackward");
    const lossFnConfig = validateLossFnConfig(options.lossFnConfig);
    this.#assertCallable(operation, options);
    return this.#fwdbwdChunks(operation, lossFn, lossFnConfig, options, this.#split(data));
  }

  #split(data: Datum[]): ReturnType<typeof splitIntoChunks> {
    const { fwdbwd_max_chunk_len, fwdbwd_max_chunk_bytes_count } = this.#ctx.config;
    return splitIntoChunks(data, { maxChunkLen: fwdbwd_max_chunk_len, maxChunkBytes: fwdbwd_max_chunk_bytes_count });
  }

  /** Takes the chunks' seq_ids now and dispatches them in their turn. */
  #fwdbwdChunks(
    operation: "forward" | "forward_backward",
    lossFn: LossFnType,
    lossFnConfig: Record<string, number> | undefined,
    options: ForwardBackwardOptions,
    chunks: ReturnType<typeof splitIntoChunks>,
  ): APIFuture<ForwardBackwardOutput> {
    const k = chunks.length;
    // Encoded before the seq ids are taken (they are known: the next k), so a datum that cannot be encoded
    // throws at once and uses none.
    const wire = this.#wire(operation === "forward", chunks, this.#seq.peek, lossFn, lossFnConfig);
    const first = this.#seq.next(k);
    const turn = this.#seq.inTurn(
      first,
      k,
      () =>
        dispatchChunks(this.#dispatchContext(), {
          operation,
          firstSeqId: first,
          chunks,
          ...wire,
          options,
          onFatal: (cause) => {
            if (k > 1 || !isAnswer(operation, cause)) this.#seq.stop({ operation, seqId: first, cause });
          },
        }),
      () => this.#stoppedError(operation, first),
    );
    return new APIFuture({
      seqId: first,
      operation,
      requestId: turn.then((d) => d.requestId),
      settled: turn.then((d) => d.result),
      wait: options.signal === undefined ? {} : { signal: options.signal },
    });
  }

  #dispatchContext(): Parameters<typeof dispatchChunks>[0] {
    return {
      transport: this.#ctx.transport,
      poller: this.#ctx.poller,
      budget: this.#ctx.budget,
      parallel: this.#ctx.config.parallel_fwdbwd_chunks,
    };
  }

  /**
   * The chunks on the wire (PROTOCOL §10.1): one protobuf `ForwardBackwardRequest` per chunk, chunk i with seq_id
   * `first + i`, zstd-compressed when the client config asks and the runtime can; results polled as protobuf.
   */
  #wire(
    forwardOnly: boolean,
    chunks: ReturnType<typeof splitIntoChunks>,
    first: number,
    lossFn: LossFnType,
    lossFnConfig: Record<string, number> | undefined,
  ): { sendChunk: SendChunk; protobuf: ProtobufResult<Schemas["ForwardBackwardOutput"]> } {
    const compress = this.#ctx.config.proto_compress_fwdbwd;
    const bodies = chunks.map((chunk, i) =>
      compressFwdbwdBody(
        encodeForwardBackwardRequest({ modelId: this.modelId, seqId: first + i, data: chunk.data, lossFn, lossFnConfig, forwardOnly }),
        compress,
      ),
    );
    return {
      sendChunk: (i) => (init) =>
        this.#ctx.transport.api.POST("/api/v1/forward_backward", {
          ...init,
          body: bodies[i]!.body as never,
          bodySerializer: (b: unknown) => b as never,
          headers: {
            ...init.headers,
            "Content-Type": PROTOBUF_MEDIA_TYPE,
            ...(bodies[i]!.encoding === undefined ? {} : { "Content-Encoding": bodies[i]!.encoding }),
          },
        }),
      protobuf: {
        headers: { accept: PROTOBUF_MEDIA_TYPE, requestType: forwardOnly ? "Forward" : "ForwardBackward" },
        decode: decodeForwardBackwardOutput,
      },
    };
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
  optimStep(adamParams: AdamParams, options: RequestOptions = {}): APIFuture<OptimStepResponse> {
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
          ? rewordAPIError(
              err,
              `Checkpoint ${path} already exists. Pass { overwrite: true } to saveState to replace it, or choose another name.`,
            )
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
    if (sampling === undefined)
      throw new InvalidArgumentError("saveWeightsAndGetSamplingClient needs a training client created by a ServiceClient.");
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
      maxConcurrentRequests: options.maxConcurrentRequests ?? this.#ctx.config.sample_max_concurrent_requests,
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
  getInfo(options: RequestOptions = {}): Promise<GetInfoResponse> {
    return this.#ctx.transport.call(
      "get_info",
      (init) => this.#ctx.transport.api.POST("/api/v1/get_info", { body: { model_id: this.modelId, type: "get_info" }, ...init }),
      GetInfoResponseSchema,
      requestOptionsOf(options),
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
  unload(options: RequestOptions = {}): APIFuture<UnloadModelResponse> {
    return submitFuture(this.#ctx, {
      operation: "unload_model",
      seqId: 0,
      send: (init) =>
        this.#ctx.transport.api.POST("/api/v1/unload_model", { body: { model_id: this.modelId, type: "unload_model" }, ...init }),
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
   * Throws at once (taking no seq_id) when the signal is already aborted.
   * Takes the next seq_id now, submits in seq order (one idempotency key for all attempts of this request, the
   * body — with its seq_id — identical on every retry), then polls the future concurrently. A submit that fails
   * for good stops the client (except a 409 on a save, which is an answer: nothing ran).
   */
  #submitOrdered<T>(
    operation: string,
    schema: z.ZodType<T>,
    options: RequestOptions,
    send: (seq: number, init: RequestInitExtras) => ReturnType<RequestFn>,
    mapSubmitError: (err: unknown) => unknown = (err) => err,
    protobuf?: ProtobufResult<T>,
  ): APIFuture<T> {
    this.#assertCallable(operation, options);
    const seq = this.#seq.next();
    return submitFuture(this.#ctx, {
      operation,
      seqId: seq,
      send: (init) => send(seq, init),
      schema,
      options,
      gate: (submit) =>
        this.#seq.inTurn(
          seq,
          1,
          async () => {
            try {
              return await submit();
            } catch (err) {
              if (!isAnswer(operation, err)) this.#seq.stop({ operation, seqId: seq, cause: err });
              throw err;
            }
          },
          () => this.#stoppedError(operation, seq),
        ),
      mapSubmitError,
      ...(protobuf === undefined ? {} : { protobuf }),
    });
  }

  /** Before taking a seq_id: a stopped client refuses, and an already-aborted signal takes none. */
  #assertCallable(operation: string, options: RequestOptions): void {
    const failed = this.#seq.stopped;
    if (failed !== undefined) throw new TrainingClientStoppedError({ modelId: this.modelId, failed, operation });
    if (options.signal?.aborted === true) {
      throw new APIUserAbortError({
        cause: options.signal.reason,
        message: `${operation} was aborted by the caller before it was sent; it took no seq_id.`,
      });
    }
  }

  #stoppedError(operation: string, seqId: number): TrainingClientStoppedError {
    return new TrainingClientStoppedError({ modelId: this.modelId, failed: this.#seq.stopped!, operation, seqId });
  }
}

/** A submit error that is the server's answer, not a failure of the order: a 409 on a save (nothing ran). */
function isAnswer(operation: string, err: unknown): boolean {
  if (err instanceof TrainingClientStoppedError) return true;
  return err instanceof ConflictError && (operation === "save_weights" || operation === "save_weights_for_sampler");
}

/** Checks `lossFnConfig`: a record of finite numbers (sent as `loss_fn_config`). */
function validateLossFnConfig(config: Record<string, number> | undefined): Record<string, number> | undefined {
  if (config === undefined) return undefined;
  if (typeof config !== "object" || config === null || Array.isArray(config)) {
    throw new InvalidArgumentError(
      "lossFnConfig must be an object of numbers, e.g. { clip_low_threshold: 0.8, clip_high_threshold: 1.2 }.",
    );
  }
  for (const [key, value] of Object.entries(config)) {
    if (typeof value !== "number" || !Number.isFinite(value)) {
      throw new InvalidArgumentError(`lossFnConfig.${key} must be a finite number, got ${String(value)}.`);
    }
  }
  return config;
}

type RequestFn = (init: RequestInitExtras) => Promise<{ data?: unknown; error?: unknown; response: Response }>;

/** The media type of protobuf bodies and results. */
const PROTOBUF_MEDIA_TYPE = "application/x-protobuf";

export { crossEntropyDatum, rlDatum, type CustomLossFn, type CustomLossResult, type RlDatumOptions } from "./datums.js";
