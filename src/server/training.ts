/**
 * Live training models of the local server and the execution of training operations (create, forward
 * backward, optim step, save, load, save for sampler, unload) as futures ordered by `seq_id`.
 *
 * Submission checks (answered synchronously as HTTP errors) are: the model exists and belongs to the
 * caller (404), `seq_id` is present (422) and in range (400, `seqIdError`), the seq id can still run (409),
 * names, TTLs and paths are well-formed (400) and, for `save_weights`, the name is free (409) unless
 * `overwrite`. Everything that depends on the order of operations (does the checkpoint to load exist yet,
 * is the name still free) is checked again when the operation executes and fails the future with category `user`.
 *
 * Deduplication: a repeated `(model_id, seq_id)` returns the original request's future and never
 * executes twice (the last {@link SEQ_DEDUP_WINDOW} seq ids of each model are remembered); a repeated
 * `create_model` with the same `(session_id, model_seq_id)` returns the original create future.
 *
 * @module
 */

import type { components } from "../../generated/schema.js";
import type { FutureOutcome, FutureRecord } from "./futures.js";
import {
  createTinyModel,
  MAX_LORA_RANK,
  ModelInputError,
  DEFAULT_LORA_ALPHA,
  prepareBatch,
  vocabForBaseModel,
  type AdamParams,
  type PreparedBatch,
  type TinyLoraModel,
} from "./model/index.js";
import { seqIdError } from "./guards.js";
import { Sequencer } from "./ordering.js";
import { adapterFiles, describeLora, loraOf, type FutureReply, type LiveModel, type TrainingHostOptions } from "./training-types.js";
import { CheckpointExistsError, type CheckpointRecord, type LoraInfo, type RunRecord } from "./store.js";
import { checkCheckpointName, HttpError, parseTinkerPath, tinkerPath, UserOpError, type ParsedTinkerPath } from "./util.js";

type Schemas = components["schemas"];

export type { FutureReply, OperationEvent, SupportedModel, TrainingHostOptions } from "./training-types.js";

/** How many recent seq ids per model are remembered for deduplication. */
export const SEQ_DEDUP_WINDOW = 4096;

/** Largest weights file `load_weights` reads (a tiny-model adapter is well under 1 MiB). */
const MAX_LOADABLE_BYTES = 64 * 1024 * 1024;

/** Default LoRA rank when `create_model` has no `lora_config`. */
const DEFAULT_RANK = 32;

/** Hosts the live models and runs their operations. */
export class TrainingHost {
  readonly #o: TrainingHostOptions;
  readonly #models = new Map<string, LiveModel>();
  readonly #inflight = new Set<Promise<void>>();
  readonly #sleeps = new Set<() => void>();
  #closed = false;

  /** Creates a host with no live models. */
  constructor(opts: TrainingHostOptions) {
    this.#o = opts;
  }

  /** Number of live (loaded) models. */
  get liveModels(): number {
    return this.#models.size;
  }

  // ---------------------------------------------------------------------------------------------
  // Helpers
  // ---------------------------------------------------------------------------------------------

  #sleep(ms: number): Promise<void> {
    if (ms <= 0 || this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#sleeps.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#sleeps.add(done);
    });
  }

  /** The live model `modelId` of `owner`, or a 404 explaining why there is none. */
  #live(owner: string, modelId: string, field = "body.model_id"): LiveModel {
    const live = this.#models.get(modelId);
    if (live && live.owner === owner) {
      if (live.unloadRequestId !== undefined) {
        throw new HttpError(404, `model ${modelId} is being unloaded; create a new training client`, { field });
      }
      return live;
    }
    const run = this.#o.store.run(modelId);
    if (run && run.owner === owner) {
      throw new HttpError(
        404,
        `model ${modelId} is not loaded (it was unloaded, or the server restarted); its checkpoints remain: ` +
          `create a new training client and load one`,
        { field },
      );
    }
    throw new HttpError(404, `model ${modelId} not found`, { field });
  }

  #checkBaseModel(baseModel: string, field: string): void {
    if (!this.#o.supportedModels.some((m) => m.model_name === baseModel)) {
      throw new HttpError(
        400,
        `base_model ${JSON.stringify(baseModel)} is not supported; supported: ${this.#o.supportedModels.map((m) => m.model_name).join(", ")}`,
        { field },
      );
    }
  }

  #checkTtl(ttl: number | null | undefined, field: string): number | null {
    if (ttl === undefined || ttl === null) return null;
    if (ttl <= 0) throw new HttpError(400, `ttl_seconds must be positive, got ${ttl}`, { field });
    if (ttl < this.#o.minTtlSeconds) {
      throw new HttpError(400, `ttl_seconds must be at least ${this.#o.minTtlSeconds}, got ${ttl}`, { field });
    }
    return ttl;
  }

  /** Finds a checkpoint `owner` may read (own, or public, or the owner's whose `weights_access_token` came along). */
  #readable(owner: string, p: ParsedTinkerPath, token?: string): CheckpointRecord | undefined {
    const rec = this.#o.store.checkpoint(p.runId, p.kind, p.name);
    if (rec && token !== undefined && this.#o.tokenOwner?.(token) === rec.owner) return rec;
    return rec && (rec.owner === owner || rec.public) ? rec : undefined;
  }

  #parseLoadPath(path: string): ParsedTinkerPath {
    const parsed = parseTinkerPath(path);
    if (typeof parsed === "string") throw new HttpError(400, `path ${parsed}`, { field: "body.path" });
    if (parsed.kind === "sampler_weights") {
      throw new HttpError(
        400,
        `${path} is a sampler checkpoint; pass a training checkpoint (tinker://<run>/weights/<name>) saved with save_weights ` +
          `(sampler checkpoints hold no optimizer state and cannot be loaded for training)`,
        { field: "body.path" },
      );
    }
    return parsed;
  }

  /** Wraps an operation body as a future outcome; ModelInputError/UserOpError are user failures. */
  async #outcome(fn: () => Promise<Record<string, unknown>>): Promise<FutureOutcome> {
    try {
      return { ok: true, value: await fn() };
    } catch (err) {
      if (err instanceof ModelInputError || err instanceof UserOpError) {
        return { ok: false, error: err.message, category: "user" };
      }
      if (err instanceof CheckpointExistsError) return { ok: false, error: err.message, category: "user" };
      this.#o.log(`training: operation failed: ${(err as Error).stack ?? String(err)}`);
      return { ok: false, error: `internal error: ${(err as Error).message}`, category: "server" };
    }
  }

  /** Builds the sequenced task that runs `fn` after the configured delay and completes `future`. */
  #task(future: FutureRecord, fn: () => Promise<Record<string, unknown>>, live?: LiveModel): () => Promise<void> {
    live?.pending.add(future);
    return async () => {
      live?.pending.delete(future);
      const run = (async () => {
        // Yield to I/O first, so the submit's answer (and any waiting poll answers) go out before the CPU-bound
        // work starts: the client can then send its next request while this one runs.
        await new Promise<void>((resolve) => setImmediate(resolve));
        await this.#sleep(this.#o.futureDelayMs);
        if (this.#closed) return;
        const startedAt = performance.now();
        const outcome = await this.#outcome(fn);
        const completedAt = performance.now();
        this.#o.futures.complete(future, outcome);
        this.#o.onOperation?.({
          requestId: future.requestId,
          type: future.type,
          modelId: future.modelId,
          startedAt,
          completedAt,
          ok: outcome.ok,
        });
      })();
      this.#inflight.add(run);
      try {
        await run;
      } finally {
        this.#inflight.delete(run);
      }
    };
  }

  #newLive(owner: string, runId: string, sessionId: string | null, baseModel: string, lora: LoraInfo, requestId: string): LiveModel {
    const live: LiveModel = {
      runId,
      owner,
      sessionId,
      baseModel,
      lora,
      model: undefined,
      createError: undefined,
      sequencer: new Sequencer(0, {
        gapTimeoutMs: this.#o.seqGapTimeoutMs,
        onSkip: (from, to) =>
          this.#o.log(
            `training: model ${runId}: seq_id ${from === to ? from : `${from}-${to}`} did not arrive within ${this.#o.seqGapTimeoutMs} ms; skipped`,
          ),
        onError: (err) => this.#o.log(`training: model ${runId}: task error ${(err as Error).message}`),
      }),
      seqRequests: new Map(),
      pending: new Set(),
      createRequestId: requestId,
      unloadRequestId: undefined,
    };
    this.#models.set(runId, live);
    return live;
  }

  #model(live: LiveModel): TinyLoraModel {
    if (live.model) return live.model;
    throw new UserOpError(`model ${live.runId} could not be created: ${live.createError ?? "unknown error"}`);
  }

  // ---------------------------------------------------------------------------------------------
  // create_model and create-via-load
  // ---------------------------------------------------------------------------------------------

  /** `create_model`: queues the model's creation as its seq 0. */
  submitCreate(owner: string, body: Schemas["CreateModelRequest"]): FutureReply {
    const session = this.#o.store.session(body.session_id);
    if (!session || session.owner !== owner) {
      throw new HttpError(404, `session ${body.session_id} not found`, { field: "body.session_id" });
    }
    const runId = `${body.session_id}:train:${body.model_seq_id}`;
    const existing = this.#models.get(runId);
    if (existing && existing.owner === owner) return { request_id: existing.createRequestId, model_id: runId };
    if (this.#o.store.run(runId)) {
      throw new HttpError(
        409,
        `model_seq_id ${body.model_seq_id} of session ${body.session_id} was already used (training run ${runId} exists)`,
        {
          field: "body.model_seq_id",
        },
      );
    }
    this.#checkBaseModel(body.base_model, "body.base_model");
    const lc = body.lora_config;
    const lora: LoraInfo = {
      rank: lc?.rank ?? DEFAULT_RANK,
      seed: lc?.seed ?? 0,
      alpha: DEFAULT_LORA_ALPHA,
      train_attn: lc?.train_attn ?? true,
      train_mlp: lc?.train_mlp ?? true,
      train_unembed: lc?.train_unembed ?? true,
    };
    if (lora.rank > MAX_LORA_RANK) {
      throw new HttpError(400, `lora_config.rank must be at most ${MAX_LORA_RANK}, got ${lora.rank}`, { field: "body.lora_config.rank" });
    }
    if (!Number.isSafeInteger(lora.seed))
      throw new HttpError(400, "lora_config.seed must be a safe integer", { field: "body.lora_config.seed" });
    if (!lora.train_attn && !lora.train_mlp && !lora.train_unembed) {
      throw new HttpError(400, "at least one of lora_config.train_attn, train_mlp, train_unembed must be true", {
        field: "body.lora_config",
      });
    }
    const future = this.#o.futures.create(owner, "CreateModel", runId);
    const live = this.#newLive(owner, runId, body.session_id, body.base_model, lora, future.requestId);
    live.sequencer.submit(
      0,
      this.#task(future, async () => {
        try {
          live.model = this.#instantiate(body.base_model, lora);
        } catch (err) {
          live.createError = (err as Error).message;
          throw err;
        }
        await this.#persistRun(live, body.session_id, body.model_seq_id, body.user_metadata ?? null);
        return { model_id: runId, type: "create_model" };
      }),
    );
    return { request_id: future.requestId, model_id: runId };
  }

  #instantiate(baseModel: string, lora: LoraInfo): TinyLoraModel {
    return createTinyModel({
      baseModel,
      rank: lora.rank,
      seed: lora.seed,
      alpha: lora.alpha,
      trainAttn: lora.train_attn,
      trainMlp: lora.train_mlp,
      trainUnembed: lora.train_unembed,
    });
  }

  async #persistRun(live: LiveModel, sessionId: string, modelSeqId: number, userMetadata: Record<string, unknown> | null): Promise<void> {
    const now = this.#o.clock();
    const rec: RunRecord = {
      training_run_id: live.runId,
      owner: live.owner,
      session_id: sessionId,
      model_seq_id: modelSeqId,
      base_model: live.baseModel,
      lora: live.lora,
      user_metadata: userMetadata,
      created_at: now,
      last_request_time: now,
    };
    await this.#o.store.addRun(rec);
  }

  /** `load_weights` with `session_id` + `model_seq_id`: creates the model from a checkpoint (its seq 0). */
  submitCreateViaLoad(owner: string, body: Schemas["LoadWeightsRequest"]): FutureReply {
    const sessionId = body.session_id!;
    const modelSeqId = body.model_seq_id;
    if (modelSeqId === undefined)
      throw new HttpError(422, "body.model_seq_id: is required with session_id", { field: "body.model_seq_id" });
    const session = this.#o.store.session(sessionId);
    if (!session || session.owner !== owner) throw new HttpError(404, `session ${sessionId} not found`, { field: "body.session_id" });
    const runId = `${sessionId}:train:${modelSeqId}`;
    const existing = this.#models.get(runId);
    if (existing && existing.owner === owner) return { request_id: existing.createRequestId, model_id: runId };
    if (this.#o.store.run(runId)) {
      throw new HttpError(409, `model_seq_id ${modelSeqId} of session ${sessionId} was already used (training run ${runId} exists)`, {
        field: "body.model_seq_id",
      });
    }
    const parsed = this.#parseLoadPath(body.path);
    const ckpt = this.#readable(owner, parsed, body.weights_access_token ?? undefined);
    if (!ckpt) throw new HttpError(404, `checkpoint ${body.path} not found`, { field: "body.path" });
    const baseModel = body.base_model ?? ckpt.base_model;
    if (baseModel !== ckpt.base_model) {
      throw new HttpError(
        400,
        `base_model ${JSON.stringify(baseModel)} is not compatible with checkpoint ${body.path} (trained on ${JSON.stringify(ckpt.base_model)})`,
        {
          field: "body.base_model",
        },
      );
    }
    this.#checkBaseModel(baseModel, "body.base_model");
    const future = this.#o.futures.create(owner, "LoadWeights", runId);
    const live = this.#newLive(owner, runId, sessionId, baseModel, ckpt.lora, future.requestId);
    const optimizer = body.optimizer;
    live.sequencer.submit(
      0,
      this.#task(future, async () => {
        try {
          live.model = this.#instantiate(baseModel, ckpt.lora);
          await this.#loadInto(live, owner, parsed, body.path, optimizer, body.weights_access_token ?? undefined);
        } catch (err) {
          live.model = undefined;
          live.createError = (err as Error).message;
          throw err;
        }
        await this.#persistRun(live, sessionId, modelSeqId, body.user_metadata ?? null);
        return { path: body.path, model_id: runId, type: "load_weights" };
      }),
    );
    return { request_id: future.requestId, model_id: runId };
  }

  // ---------------------------------------------------------------------------------------------
  // Seq-ordered operations
  // ---------------------------------------------------------------------------------------------

  /**
   * Common submission path of seq-ordered ops: ownership, seq id presence, dedup, ordering, then
   * `prepare` (submit-time checks returning the executor).
   */
  #submitSequenced(
    owner: string,
    modelId: string,
    seqId: number | undefined,
    type: string,
    op: string,
    prepare: (live: LiveModel, seq: number) => () => Promise<Record<string, unknown>>,
  ): FutureReply {
    const live = this.#live(owner, modelId);
    if (seqId === undefined) {
      throw new HttpError(422, `body.seq_id: is required for ${op} (training requests are ordered by seq_id, starting at 1)`, {
        field: "body.seq_id",
      });
    }
    const badSeq = seqIdError(seqId, live.sequencer.next, modelId);
    if (badSeq !== undefined) throw badSeq;
    const original = live.seqRequests.get(seqId);
    if (original instanceof HttpError) throw original;
    if (original !== undefined) return { request_id: original, model_id: modelId };
    if (live.sequencer.isPast(seqId)) {
      throw new HttpError(
        409,
        `seq_id ${seqId} of model ${modelId} can no longer run: the model has moved past it (next seq_id due is ${live.sequencer.next}); ` +
          `it was skipped after ${this.#o.seqGapTimeoutMs} ms or is older than the deduplication window`,
        { field: "body.seq_id" },
      );
    }
    const remember = (answer: string | HttpError): void => {
      live.seqRequests.set(seqId, answer);
      if (live.seqRequests.size > SEQ_DEDUP_WINDOW) live.seqRequests.delete(live.seqRequests.keys().next().value as number);
    };
    let exec: () => Promise<Record<string, unknown>>;
    try {
      exec = prepare(live, seqId);
    } catch (err) {
      if (err instanceof HttpError) {
        // The request was rejected, but its seq id is used up: let later ops run at once (no gap wait),
        // and answer a repeat of this seq id with the same error.
        remember(err);
        live.sequencer.submit(seqId, async () => undefined);
      }
      throw err;
    }
    const future = this.#o.futures.create(owner, type, modelId);
    remember(future.requestId);
    live.sequencer.submit(seqId, this.#task(future, exec, live));
    this.#o.store.touchRun(modelId, this.#o.clock());
    return { request_id: future.requestId, model_id: modelId };
  }

  /**
   * Marks `seqId` of `modelId` as used by a request that was rejected before reaching the model (e.g. a
   * schema violation), so later ops do not wait for it; a repeat of that seq id gets the same error.
   */
  rejectSeq(owner: string, modelId: string, seqId: number, error: HttpError): void {
    const live = this.#models.get(modelId);
    if (!live || live.owner !== owner || live.unloadRequestId !== undefined) return;
    if (seqIdError(seqId, live.sequencer.next, modelId) || live.seqRequests.has(seqId)) return;
    if (live.sequencer.isPast(seqId)) return;
    if (live.sequencer.isQueued(seqId)) return;
    live.seqRequests.set(seqId, error);
    if (live.seqRequests.size > SEQ_DEDUP_WINDOW) live.seqRequests.delete(live.seqRequests.keys().next().value as number);
    live.sequencer.submit(seqId, async () => undefined);
  }

  /**
   * `forward_backward`, or `forward` when `forward_only` (the loss and outputs only: no gradient is
   * accumulated, and the future's type is `Forward`). Sparse CSR tensors are made dense for the model.
   */
  submitForwardBackward(owner: string, body: Schemas["ForwardBackwardRequest"]): FutureReply {
    const forwardOnly = body.forward_only === true;
    const type = forwardOnly ? "Forward" : "ForwardBackward";
    return this.#submitSequenced(owner, body.model_id, body.seq_id, type, forwardOnly ? "forward" : "forward_backward", (live) => {
      // Inputs are checked at submit (a 400 naming the field); `forward_only` runs the loss without gradients.
      const batch = this.#prepareBatch(live, body.forward_backward_input);
      return async () => this.#model(live).run(batch, { forwardOnly }) as unknown as Record<string, unknown>;
    });
  }

  /** Validates a forward_backward input against the model's vocabulary; model input errors become 400s. */
  #prepareBatch(live: LiveModel, input: Schemas["ForwardBackwardInput"] | undefined): PreparedBatch {
    const vocabSize = live.model?.config.vocabSize ?? vocabForBaseModel(live.baseModel).vocabSize;
    try {
      return prepareBatch(input?.data, input?.loss_fn, input?.loss_fn_config, vocabSize);
    } catch (err) {
      if (!(err instanceof ModelInputError)) throw err;
      throw new HttpError(400, `body.forward_backward_input.${err.message}`, {
        field: `body.forward_backward_input.${err.field ?? "data"}`,
      });
    }
  }

  /** `optim_step`. */
  submitOptimStep(owner: string, body: Schemas["OptimStepRequest"]): FutureReply {
    return this.#submitSequenced(owner, body.model_id, body.seq_id, "OptimStep", "optim_step", (live) => async () => {
      const p = body.adam_params;
      const params: AdamParams = {
        learning_rate: p.learning_rate,
        beta1: p.beta1 ?? 0.9,
        beta2: p.beta2 ?? 0.95,
        eps: p.eps ?? 1e-12,
        weight_decay: p.weight_decay ?? 0,
        grad_clip_norm: p.grad_clip_norm ?? 0,
      };
      const { metrics } = this.#model(live).optimStep(params);
      return { metrics };
    });
  }

  /** `save_weights`: 409 at submit when the name exists (unless `overwrite`). */
  submitSaveWeights(owner: string, body: Schemas["SaveWeightsRequest"]): FutureReply {
    return this.#submitSequenced(owner, body.model_id, body.seq_id, "SaveWeights", "save_weights", (live, seq) => {
      const name = body.path ?? `checkpoint-${seq}`;
      const bad = checkCheckpointName(name);
      if (bad !== undefined) throw new HttpError(400, `path (the checkpoint name) ${bad}`, { field: "body.path" });
      const ttl = this.#checkTtl(body.ttl_seconds, "body.ttl_seconds");
      const overwrite = body.overwrite ?? false;
      if (!overwrite && this.#o.store.checkpoint(live.runId, "weights", name)) {
        throw new HttpError(409, new CheckpointExistsError(live.runId, "weights", name).message, { field: "body.path" });
      }
      return async () => {
        const model = this.#model(live);
        const weights = model.exportWeights();
        const optimizer = model.exportOptimizer();
        const rec = await this.#o.store.saveCheckpoint({
          runId: live.runId,
          kind: "weights",
          name,
          owner: live.owner,
          overwrite,
          ttlSeconds: ttl,
          base_model: live.baseModel,
          lora: loraOf(model),
          files: [...adapterFiles(model, weights), { name: "optimizer.safetensors", data: optimizer }],
        });
        return { path: tinkerPath(rec.training_run_id, "weights", rec.name), type: "save_weights" };
      };
    });
  }

  /** `save_weights_for_sampler`: named (`path`) or ephemeral (`sampling_session_seq_id`). */
  submitSaveForSampler(owner: string, body: Schemas["SaveWeightsForSamplerRequest"]): FutureReply {
    return this.#submitSequenced(owner, body.model_id, body.seq_id, "SaveWeightsForSampler", "save_weights_for_sampler", (live, seq) => {
      const ephemeral = body.path === undefined && body.sampling_session_seq_id !== undefined;
      const name = body.path ?? (ephemeral ? `sampler-${body.sampling_session_seq_id}` : `sampler-${seq}`);
      const bad = checkCheckpointName(name);
      if (bad !== undefined) throw new HttpError(400, `path (the checkpoint name) ${bad}`, { field: "body.path" });
      const ttl = this.#checkTtl(body.ttl_seconds, "body.ttl_seconds");
      if (!ephemeral && this.#o.store.checkpoint(live.runId, "sampler_weights", name)) {
        throw new HttpError(
          409,
          `checkpoint sampler_weights/${name} already exists in run ${live.runId}; choose another name or delete it first`,
          {
            field: "body.path",
          },
        );
      }
      const samplingSessionId = ephemeral ? `${live.sessionId ?? live.runId}:sample:${body.sampling_session_seq_id}` : null;
      return async () => {
        const model = this.#model(live);
        const weights = model.exportWeights();
        let rec: CheckpointRecord;
        try {
          rec = await this.#o.store.saveCheckpoint({
            runId: live.runId,
            kind: "sampler_weights",
            name,
            owner: live.owner,
            overwrite: ephemeral,
            ttlSeconds: ttl,
            base_model: live.baseModel,
            lora: loraOf(model),
            files: adapterFiles(model, weights),
          });
        } catch (err) {
          if (err instanceof CheckpointExistsError) {
            throw new UserOpError(
              `checkpoint sampler_weights/${name} already exists in run ${live.runId}; choose another name or delete it first`,
            );
          }
          throw err;
        }
        const path = tinkerPath(rec.training_run_id, "sampler_weights", rec.name);
        const { owner, sessionId, baseModel } = live;
        if (samplingSessionId !== null)
          await this.#o.onSamplerSaved({ owner, samplerId: samplingSessionId, sessionId, baseModel, modelPath: path });
        const result: Record<string, unknown> = { path, type: "save_weights_for_sampler" };
        if (samplingSessionId !== null) result.sampling_session_id = samplingSessionId;
        return result;
      };
    });
  }

  /** `load_weights` into an existing model (`model_id` + `seq_id`). */
  submitLoadWeights(owner: string, body: Schemas["LoadWeightsRequest"]): FutureReply {
    return this.#submitSequenced(owner, body.model_id!, body.seq_id, "LoadWeights", "load_weights", (live) => {
      const parsed = this.#parseLoadPath(body.path);
      return async () => {
        await this.#loadInto(live, owner, parsed, body.path, body.optimizer, body.weights_access_token ?? undefined);
        return { path: body.path, model_id: live.runId, type: "load_weights" };
      };
    });
  }

  /** Loads checkpoint `parsed` into `live` (all-or-nothing). */
  async #loadInto(
    live: LiveModel,
    owner: string,
    parsed: ParsedTinkerPath,
    path: string,
    optimizer: boolean,
    token?: string,
  ): Promise<void> {
    const model = this.#model(live);
    const ckpt = this.#readable(owner, parsed, token);
    if (!ckpt)
      throw new UserOpError(`checkpoint ${path} not found (it does not exist, expired, was deleted, or is not yours and not public)`);
    const mine = loraOf(model);
    const same =
      ckpt.base_model === live.baseModel &&
      ckpt.lora.rank === mine.rank &&
      ckpt.lora.alpha === mine.alpha &&
      ckpt.lora.train_attn === mine.train_attn &&
      ckpt.lora.train_mlp === mine.train_mlp &&
      ckpt.lora.train_unembed === mine.train_unembed;
    if (!same) {
      throw new UserOpError(
        `checkpoint ${path} is incompatible with model ${live.runId}: checkpoint has ${describeLora(ckpt.base_model, ckpt.lora)}, ` +
          `model has ${describeLora(live.baseModel, mine)}; create a training client with the checkpoint's configuration`,
      );
    }
    const size = await this.#o.store.checkpointFileSize(ckpt, "adapter_model.safetensors");
    if (size === undefined) throw new UserOpError(`checkpoint ${path} has no adapter_model.safetensors`);
    if (size > MAX_LOADABLE_BYTES)
      throw new UserOpError(`checkpoint ${path} holds ${size} bytes of weights, which is not a tiny-model adapter and cannot be loaded`);
    const weights = await this.#o.store.readCheckpointFile(ckpt, "adapter_model.safetensors");
    let optimizerBuf: Buffer | undefined;
    if (optimizer) {
      const osize = await this.#o.store.checkpointFileSize(ckpt, "optimizer.safetensors");
      if (osize === undefined) throw new UserOpError(`checkpoint ${path} has no optimizer state; load it with optimizer: false`);
      if (osize > MAX_LOADABLE_BYTES) throw new UserOpError(`checkpoint ${path} has an oversized optimizer file`);
      optimizerBuf = await this.#o.store.readCheckpointFile(ckpt, "optimizer.safetensors");
    }
    const backupWeights = model.exportWeights();
    const backupOptimizer = model.exportOptimizer();
    try {
      model.importWeights(weights);
      if (optimizerBuf) model.importOptimizer(optimizerBuf);
      else model.resetOptimizer();
    } catch (err) {
      model.importWeights(backupWeights);
      model.importOptimizer(backupOptimizer);
      if (err instanceof ModelInputError) throw new UserOpError(`checkpoint ${path} cannot be loaded: ${err.message}`);
      throw err;
    }
  }

  /** `unload_model`: runs after everything queued, then frees the model. */
  submitUnload(owner: string, body: Schemas["UnloadModelRequest"]): FutureReply {
    const existing = this.#models.get(body.model_id);
    if (existing && existing.owner === owner && existing.unloadRequestId !== undefined) {
      return { request_id: existing.unloadRequestId, model_id: body.model_id };
    }
    const live = this.#live(owner, body.model_id);
    const future = this.#o.futures.create(owner, "UnloadModel", live.runId);
    live.unloadRequestId = future.requestId;
    live.sequencer.barrier(
      this.#task(future, async () => {
        live.model = undefined;
        live.sequencer.close();
        for (const queued of live.pending) {
          this.#o.futures.complete(queued, {
            ok: false,
            error: `model ${live.runId} was unloaded before this request ran (its seq_id was still waiting for a predecessor)`,
            category: "user",
          });
        }
        live.pending.clear();
        if (this.#models.get(live.runId) === live) this.#models.delete(live.runId);
        return { model_id: live.runId, type: "unload_model" };
      }),
    );
    this.#o.store.touchRun(live.runId, this.#o.clock());
    return { request_id: future.requestId, model_id: live.runId };
  }

  /** `get_info` for a live model or a stored run of `owner`. */
  getInfo(owner: string, modelId: string): Schemas["GetInfoResponse"] {
    const live = this.#models.get(modelId);
    const run = this.#o.store.run(modelId);
    let baseModel: string;
    let rank: number;
    if (live && live.owner === owner) {
      baseModel = live.baseModel;
      rank = live.lora.rank;
    } else if (run && run.owner === owner) {
      baseModel = run.base_model;
      rank = run.lora.rank;
    } else {
      throw new HttpError(404, `model ${modelId} not found`, { field: "body.model_id" });
    }
    return {
      type: "get_info",
      model_data: { arch: "tinker-ts-tiny-lora", model_name: baseModel, tokenizer_id: baseModel },
      model_id: modelId,
      is_lora: true,
      lora_rank: rank,
      model_name: baseModel,
    };
  }

  /** Stops executing operations; waits (bounded) for running ones to finish. */
  async close(timeoutMs = 5000): Promise<void> {
    this.#closed = true;
    for (const live of this.#models.values()) live.sequencer.close();
    for (const wake of [...this.#sleeps]) wake();
    const running = [...this.#inflight];
    if (running.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled(running),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, timeoutMs);
        }),
      ]);
      clearTimeout(timer);
    }
    this.#models.clear();
  }
}
