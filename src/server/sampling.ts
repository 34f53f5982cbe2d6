/**
 * Sampling on the local server (PROTOCOL §3 rows 30, 33, 34, §10.4, decision 12): sampling sessions
 * (`create_sampling_session`, and the unnamed `save_weights_for_sampler` that creates one), `asample` as a future
 * whose result is a `SampleResponse` (protobuf when the poll asks for it), and `GET /api/v1/samplers/{id}`.
 *
 * - A sampler samples from the tiny model of its checkpoint (a sampler or a training checkpoint), or from the base
 *   model's initial weights. Its record is persisted under `<dataDir>/samplers/`, so it survives a restart.
 * - The random stream of a sample depends only on the request's `seed`, its prompt and the sample's index (never on
 *   `seq_id`, the client or timing): equal requests give equal tokens, across clients and restarts. Without `seed`,
 *   each request draws a fresh one.
 * - Without `stop`, the base model's end-of-sequence ids end a sample; `stop` as token ids replaces them (the stop
 *   token is included in `tokens`, stop reason `stop`); `stop` as strings is refused with a 400 (the local server
 *   has no real tokenizer to match text). Without `max_tokens`, {@link DEFAULT_MAX_TOKENS}.
 * - Requests run one at a time in arrival order (the event loop yields to I/O between them). More than
 *   {@link MAX_QUEUED_SAMPLES} waiting requests get 429 (the SDK backs off and resends).
 *
 * @module
 */

import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import type { components } from "../../generated/schema.js";
import {
  SampledSequenceSchema,
  SampleResponseSchema,
  StopReason,
  TopkPromptLogprobsSchema,
} from "../../generated/proto/tinker_public_pb.js";
import type { FutureRecord, FutureRegistry } from "./futures.js";
import {
  createTinyModel,
  loadTinyModel,
  ModelInputError,
  promptLogprobs,
  sample,
  topkPromptLogprobs,
  vocabForBaseModel,
  type TinyLoraModel,
} from "./model/index.js";
import type { CheckpointRecord, Store } from "./store.js";
import type { FutureReply, OperationEvent, SupportedModel } from "./training.js";
import { atomicWriteFile, decodeFileName, encodeFileName, HttpError, parseTinkerPath } from "./util.js";

type Schemas = components["schemas"];

/** Tokens generated when a request gives no `max_tokens`. */
export const DEFAULT_MAX_TOKENS = 128;
/** Waiting sample requests beyond which `asample` answers 429. */
export const MAX_QUEUED_SAMPLES = 4096;
/** Largest `num_samples` of one request. */
export const MAX_NUM_SAMPLES = 1024;
/** Largest `topk_prompt_logprobs`. */
export const MAX_TOPK_PROMPT_LOGPROBS = 1024;
/** The empty cell of a top-k prompt logprob row on the wire: `(0, -99999.0)`. */
export const TOPK_EMPTY_LOGPROB = -99999;
const MODEL_CACHE_SIZE = 8;
const DEDUP_WINDOW = 10_000;

/** A persisted sampler (sampling session). */
export type SamplerRecord = {
  sampler_id: string;
  owner: string;
  session_id: string | null;
  base_model: string;
  /** The checkpoint sampled from, or null for the base model. */
  model_path: string | null;
  created_at: number;
};

/** Options of {@link SamplingHost}. */
export type SamplingHostOptions = {
  store: Store;
  futures: FutureRegistry;
  dataDir: string;
  clock: () => number;
  log: (line: string) => void;
  supportedModels: readonly SupportedModel[];
  /** Told about every finished sample; `awaited`: a poll was already waiting for it when it completed. */
  onOperation?: ((event: OperationEvent & { awaited?: boolean }) => void) | undefined;
};

/** A `SampleResponse` in its JSON form (null where the protobuf form has NaN or an empty top-k cell). */
export type SampleResult = {
  sequences: Array<{ stop_reason: "stop" | "length"; tokens: number[]; logprobs: number[] }>;
  prompt_logprobs: Array<number | null> | null;
  topk_prompt_logprobs: Array<Array<[number, number]> | null> | null;
  prompt_cache_hit_tokens: number;
  type: "sample";
};

type Job = {
  future: FutureRecord;
  run: () => Promise<Record<string, unknown>>;
};

const bad = (field: string, message: string): HttpError => new HttpError(400, `${field}: ${message}`, { field });

/** Samplers, and the queue that runs sample requests. */
export class SamplingHost {
  readonly #o: SamplingHostOptions;
  readonly #samplers = new Map<string, SamplerRecord>();
  readonly #models = new Map<string, Promise<TinyLoraModel>>();
  readonly #seen = new Map<string, string>();
  readonly #queue: Job[] = [];
  #running = false;
  #closed = false;
  #idle: Promise<void> = Promise.resolve();

  private constructor(opts: SamplingHostOptions) {
    this.#o = opts;
  }

  /** Opens the host, loading the persisted samplers. */
  static async open(opts: SamplingHostOptions): Promise<SamplingHost> {
    const host = new SamplingHost(opts);
    const dir = host.#dir();
    await mkdir(dir, { recursive: true });
    for (const file of await readdir(dir)) {
      if (!file.endsWith(".json")) continue;
      const id = decodeFileName(file.slice(0, -5));
      try {
        const rec = JSON.parse(await readFile(join(dir, file), "utf8")) as SamplerRecord;
        if (id !== undefined && rec.sampler_id === id) host.#samplers.set(id, rec);
      } catch (err) {
        opts.log(`sampling: skipping unreadable sampler record ${file}: ${(err as Error).message}`);
      }
    }
    return host;
  }

  #dir(): string {
    return join(this.#o.dataDir, "samplers");
  }

  async #persist(rec: SamplerRecord): Promise<void> {
    this.#samplers.set(rec.sampler_id, rec);
    await atomicWriteFile(join(this.#dir(), `${encodeFileName(rec.sampler_id)}.json`), `${JSON.stringify(rec)}\n`);
    if (rec.session_id !== null) await this.#o.store.addSamplerToSession(rec.session_id, rec.sampler_id);
  }

  #checkBaseModel(baseModel: string, field: string): void {
    if (!this.#o.supportedModels.some((m) => m.model_name === baseModel)) {
      throw new HttpError(
        400,
        `${field}: base_model ${JSON.stringify(baseModel)} is not supported; supported: ${this.#o.supportedModels.map((m) => m.model_name).join(", ")}`,
        { field },
      );
    }
  }

  /** The checkpoint `path` names, readable by `owner`, or a 400/404 naming `field`. */
  #checkpoint(owner: string, path: string, field: string): CheckpointRecord {
    const parsed = parseTinkerPath(path);
    if (typeof parsed === "string") throw bad(field, `model_path ${parsed}`);
    const rec = this.#o.store.checkpoint(parsed.runId, parsed.kind, parsed.name);
    if (!rec || (rec.owner !== owner && !rec.public)) {
      throw new HttpError(
        404,
        `${field}: checkpoint ${path} not found (it does not exist, expired, was deleted, or is not yours and not public)`,
        {
          field,
        },
      );
    }
    return rec;
  }

  /** `create_sampling_session`: a sampler on `model_path` or `base_model` (idempotent per sampler id). */
  async createSession(owner: string, body: Schemas["CreateSamplingSessionRequest"]): Promise<Schemas["CreateSamplingSessionResponse"]> {
    const session = this.#o.store.session(body.session_id);
    if (!session || session.owner !== owner) throw new HttpError(404, `session ${body.session_id} not found`, { field: "body.session_id" });
    const modelPath = body.model_path ?? null;
    let baseModel = body.base_model ?? null;
    if (modelPath === null && baseModel === null) {
      throw bad("body.model_path", "a sampling session needs model_path (a tinker:// checkpoint path) or base_model");
    }
    if (modelPath !== null) {
      const rec = this.#checkpoint(owner, modelPath, "body.model_path");
      if (baseModel !== null && baseModel !== rec.base_model) {
        throw bad(
          "body.base_model",
          `${JSON.stringify(baseModel)} does not match checkpoint ${modelPath}, trained on ${JSON.stringify(rec.base_model)}`,
        );
      }
      baseModel = rec.base_model;
    } else {
      this.#checkBaseModel(baseModel!, "body.base_model");
    }
    const samplerId = `${body.session_id}:sample:${body.sampling_session_seq_id}`;
    const existing = this.#samplers.get(samplerId);
    if (existing) {
      if (existing.owner !== owner) throw new HttpError(404, `session ${body.session_id} not found`, { field: "body.session_id" });
      if (existing.model_path !== modelPath || existing.base_model !== baseModel) {
        throw new HttpError(
          409,
          `sampling_session_seq_id ${body.sampling_session_seq_id} of session ${body.session_id} was already used for another sampler`,
          {
            field: "body.sampling_session_seq_id",
          },
        );
      }
      return { sampling_session_id: samplerId, type: "create_sampling_session" };
    }
    await this.#persist({
      sampler_id: samplerId,
      owner,
      session_id: body.session_id,
      base_model: baseModel!,
      model_path: modelPath,
      created_at: this.#o.clock(),
    });
    return { sampling_session_id: samplerId, type: "create_sampling_session" };
  }

  /** Registers the sampler an unnamed `save_weights_for_sampler` created. */
  async registerSaved(info: {
    owner: string;
    samplerId: string;
    sessionId: string | null;
    baseModel: string;
    modelPath: string;
  }): Promise<void> {
    await this.#persist({
      sampler_id: info.samplerId,
      owner: info.owner,
      session_id: info.sessionId,
      base_model: info.baseModel,
      model_path: info.modelPath,
      created_at: this.#o.clock(),
    });
  }

  /** `GET /api/v1/samplers/{id}`. */
  getSampler(owner: string, samplerId: string): Schemas["GetSamplerResponse"] {
    const rec = this.#samplers.get(samplerId);
    if (!rec || rec.owner !== owner) throw new HttpError(404, `sampler ${samplerId} not found`);
    return { sampler_id: rec.sampler_id, base_model: rec.base_model, model_path: rec.model_path };
  }

  /** `asample`: checks the request (400/404 naming the field), then queues it as a future. */
  submitSample(owner: string, body: Schemas["SampleRequest"]): FutureReply {
    if (this.#closed) throw new HttpError(503, "the server is shutting down");
    let target: { samplerId: string | undefined; baseModel: string; modelPath: string | null };
    if (body.sampling_session_id !== undefined && body.sampling_session_id !== null) {
      const rec = this.#samplers.get(body.sampling_session_id);
      if (!rec || rec.owner !== owner) {
        throw new HttpError(
          404,
          `body.sampling_session_id: sampler ${body.sampling_session_id} not found; create one with create_sampling_session`,
          {
            field: "body.sampling_session_id",
          },
        );
      }
      target = { samplerId: rec.sampler_id, baseModel: rec.base_model, modelPath: rec.model_path };
    } else if (typeof body.model_path === "string") {
      const rec = this.#checkpoint(owner, body.model_path, "body.model_path");
      target = { samplerId: undefined, baseModel: rec.base_model, modelPath: body.model_path };
    } else if (typeof body.base_model === "string") {
      this.#checkBaseModel(body.base_model, "body.base_model");
      target = { samplerId: undefined, baseModel: body.base_model, modelPath: null };
    } else {
      throw bad("body.sampling_session_id", "is required (or model_path / base_model)");
    }
    const ckpt = target.modelPath === null ? undefined : this.#checkpoint(owner, target.modelPath, "body.sampling_session_id");
    const dedupKey = target.samplerId !== undefined && typeof body.seq_id === "number" ? `${target.samplerId}#${body.seq_id}` : undefined;
    if (dedupKey !== undefined) {
      const original = this.#seen.get(dedupKey);
      if (original !== undefined) return { request_id: original, model_id: target.samplerId! };
    }
    const req = this.#checkRequest(body, target.baseModel);
    if (this.#queue.length >= MAX_QUEUED_SAMPLES) {
      throw new HttpError(429, `${this.#queue.length} sample requests are waiting; back off and resend`, {
        headers: { "retry-after": "1" },
      });
    }
    const future = this.#o.futures.create(owner, "Sample", target.samplerId);
    if (dedupKey !== undefined) {
      this.#seen.set(dedupKey, future.requestId);
      if (this.#seen.size > DEDUP_WINDOW) this.#seen.delete(this.#seen.keys().next().value as string);
    }
    this.#enqueue({
      future,
      run: async () => {
        const model = await this.#model(target.baseModel, ckpt);
        return runSample(model, req) as unknown as Record<string, unknown>;
      },
    });
    return { request_id: future.requestId, model_id: target.samplerId ?? target.modelPath ?? target.baseModel };
  }

  /** Validates a sample request; returns what the kernels need. */
  #checkRequest(body: Schemas["SampleRequest"], baseModel: string): SampleJob {
    const vocab = vocabForBaseModel(baseModel);
    const V = vocab.vocabSize;
    const numSamples = body.num_samples ?? 1;
    if (!Number.isSafeInteger(numSamples) || numSamples < 1 || numSamples > MAX_NUM_SAMPLES) {
      throw bad("body.num_samples", `must be an integer in [1, ${MAX_NUM_SAMPLES}], got ${String(numSamples)}`);
    }
    const prompt: number[] = [];
    body.prompt.chunks.forEach((chunk, i) => {
      if (chunk.type !== "encoded_text" && chunk.type !== undefined) {
        throw bad(
          `body.prompt.chunks[${i}]`,
          `${chunk.type} chunks are not supported by the local server's text-only model; send encoded_text tokens`,
        );
      }
      const tokens = (chunk as Schemas["EncodedTextChunk"]).tokens;
      tokens.forEach((t, j) => {
        if (!Number.isSafeInteger(t) || t < 0 || t >= V) {
          throw bad(`body.prompt.chunks[${i}].tokens[${j}]`, `token ${t} is not an id of ${baseModel}'s vocabulary [0, ${V})`);
        }
        prompt.push(t);
      });
    });
    if (prompt.length === 0) throw bad("body.prompt", "must contain at least one token");
    const p = body.sampling_params;
    const maxTokens = p.max_tokens ?? DEFAULT_MAX_TOKENS;
    if (!Number.isSafeInteger(maxTokens) || maxTokens < 1)
      throw bad("body.sampling_params.max_tokens", `must be an integer >= 1, got ${String(maxTokens)}`);
    const context = this.#o.supportedModels.find((m) => m.model_name === baseModel)?.max_context_length;
    if (context !== undefined && prompt.length + maxTokens > context) {
      throw bad(
        "body.sampling_params.max_tokens",
        `prompt (${prompt.length} tokens) + max_tokens (${maxTokens}) exceeds ${baseModel}'s context of ${context} tokens`,
      );
    }
    const temperature = p.temperature ?? 1;
    if (!Number.isFinite(temperature) || temperature < 0)
      throw bad("body.sampling_params.temperature", `must be a finite number >= 0, got ${String(temperature)}`);
    const topK = p.top_k ?? -1;
    if (!Number.isSafeInteger(topK) || topK < -1)
      throw bad("body.sampling_params.top_k", `must be -1 (off) or an integer >= 1, got ${String(topK)}`);
    const topP = p.top_p ?? 1;
    if (!(topP > 0 && topP <= 1)) throw bad("body.sampling_params.top_p", `must be in (0, 1], got ${String(topP)}`);
    let stopTokenIds: number[] | null = null;
    const stop = p.stop;
    if (typeof stop === "string" || (Array.isArray(stop) && stop.some((s) => typeof s === "string"))) {
      throw bad(
        "body.sampling_params.stop",
        "stop strings need a tokenizer, which the local server does not have; pass stop token ids (e.g. [151645]) instead",
      );
    }
    if (Array.isArray(stop)) {
      (stop as number[]).forEach((t, i) => {
        if (!Number.isSafeInteger(t) || t < 0) throw bad(`body.sampling_params.stop[${i}]`, `token ${t} is not a non-negative integer`);
      });
      stopTokenIds = stop as number[];
    }
    let seed: number | string;
    if (p.seed === undefined || p.seed === null) seed = randomBytes(8).readBigUInt64LE().toString();
    else if (!Number.isInteger(p.seed)) throw bad("body.sampling_params.seed", `must be an integer, got ${String(p.seed)}`);
    else seed = Number.isSafeInteger(p.seed) ? p.seed : BigInt(p.seed).toString();
    const topk = body.topk_prompt_logprobs ?? 0;
    if (!Number.isSafeInteger(topk) || topk < 0 || topk > MAX_TOPK_PROMPT_LOGPROBS) {
      throw bad("body.topk_prompt_logprobs", `must be an integer in [0, ${MAX_TOPK_PROMPT_LOGPROBS}], got ${String(topk)}`);
    }
    return {
      prompt,
      numSamples,
      maxTokens,
      temperature,
      topK,
      topP,
      stopTokenIds,
      seed,
      promptLogprobs: body.prompt_logprobs === true,
      topk,
    };
  }

  /** The model of a checkpoint (or of the base model), cached (LRU of a few). */
  #model(baseModel: string, ckpt: CheckpointRecord | undefined): Promise<TinyLoraModel> {
    const key = ckpt ? `${ckpt.training_run_id}/${ckpt.kind}/${ckpt.name}#${ckpt.gen}` : `base:${baseModel}`;
    let model = this.#models.get(key);
    if (model) {
      this.#models.delete(key);
    } else {
      model = ckpt
        ? this.#o.store.readCheckpointFile(ckpt, "adapter_model.safetensors").then((buf) => loadTinyModel(buf))
        : Promise.resolve(createTinyModel({ baseModel, rank: 1, trainAttn: true, trainMlp: true, trainUnembed: true }));
      model.catch(() => this.#models.delete(key));
    }
    this.#models.set(key, model);
    while (this.#models.size > MODEL_CACHE_SIZE) this.#models.delete(this.#models.keys().next().value as string);
    return model;
  }

  #enqueue(job: Job): void {
    this.#queue.push(job);
    if (this.#running) return;
    this.#running = true;
    this.#idle = this.#drain();
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0 && !this.#closed) {
        // Yield to I/O first: the submit's answer and the polls woken by the previous result go out before the CPU work.
        await new Promise<void>((resolve) => setImmediate(resolve));
        const job = this.#queue.shift()!;
        const startedAt = performance.now();
        let ok = true;
        try {
          const value = await job.run();
          const completedAt = performance.now();
          const awaited = this.#o.futures.isAwaited(job.future.requestId);
          this.#o.futures.complete(job.future, { ok: true, value });
          this.#o.onOperation?.({
            requestId: job.future.requestId,
            type: "Sample",
            modelId: job.future.modelId,
            startedAt,
            completedAt,
            ok,
            awaited,
          });
          continue;
        } catch (err) {
          ok = false;
          const user = err instanceof ModelInputError;
          if (!user) this.#o.log(`sampling: request failed: ${(err as Error).stack ?? String(err)}`);
          this.#o.futures.complete(job.future, {
            ok: false,
            error: user ? `sample: ${(err as Error).message}` : `internal error: ${(err as Error).message}`,
            category: user ? "user" : "server",
          });
        }
        this.#o.onOperation?.({
          requestId: job.future.requestId,
          type: "Sample",
          modelId: job.future.modelId,
          startedAt,
          completedAt: performance.now(),
          ok,
        });
      }
    } finally {
      this.#running = false;
    }
  }

  /** Stops running queued requests; waits for the one in progress. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#queue.length = 0;
    await this.#idle;
  }
}

type SampleJob = {
  prompt: number[];
  numSamples: number;
  maxTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  stopTokenIds: number[] | null;
  seed: number | string;
  promptLogprobs: boolean;
  topk: number;
};

/** Runs one sample request on `model`. */
function runSample(model: TinyLoraModel, job: SampleJob): SampleResult {
  const seqs = sample(model, job.prompt, job.numSamples, {
    maxTokens: job.maxTokens,
    temperature: job.temperature,
    topK: job.topK,
    topP: job.topP,
    stopTokenIds: job.stopTokenIds,
    seed: job.seed,
  });
  return {
    sequences: seqs.map((s) => ({ stop_reason: s.stopReason, tokens: s.tokens, logprobs: s.logprobs })),
    prompt_logprobs: job.promptLogprobs ? promptLogprobs(model, job.prompt) : null,
    topk_prompt_logprobs: job.topk > 0 ? topkPromptLogprobs(model, job.prompt, job.topk) : null,
    prompt_cache_hit_tokens: 0,
    type: "sample",
  };
}

function float32Bytes(values: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i]!, true);
  return out;
}

function int32Bytes(values: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setInt32(i * 4, values[i]!, true);
  return out;
}

/**
 * Encodes a finished sample result as `tinker_public.SampleResponse`: one `SampledSequence` per sample (stop reason
 * 0 = stop, 1 = length; int32 tokens, float32 logprobs), prompt logprobs as float32 with NaN where there is none
 * (position 0), and top-k prompt logprobs as prompt_length × k row-major cells padded with `(0, -99999.0)`.
 *
 * @example
 * ```ts
 * const bytes = encodeSampleResponse({ sequences: [{ stop_reason: "length", tokens: [5], logprobs: [-1] }],
 *   prompt_logprobs: null, topk_prompt_logprobs: null, prompt_cache_hit_tokens: 0, type: "sample" });
 * ```
 */
export function encodeSampleResponse(value: Record<string, unknown>): Uint8Array {
  const r = value as unknown as SampleResult;
  const msg = create(SampleResponseSchema, {
    sequences: r.sequences.map((s) =>
      create(SampledSequenceSchema, {
        stopReason: s.stop_reason === "stop" ? StopReason.STOP : StopReason.LENGTH,
        tokens: int32Bytes(s.tokens),
        logprobs: float32Bytes(s.logprobs),
      }),
    ),
    promptCacheHitTokens: r.prompt_cache_hit_tokens ?? 0,
  });
  if (r.prompt_logprobs) msg.promptLogprobs = float32Bytes(r.prompt_logprobs.map((v) => (v === null ? Number.NaN : v)));
  const rows = r.topk_prompt_logprobs;
  if (rows && rows.length > 0) {
    const k = Math.max(1, ...rows.map((row) => row?.length ?? 0));
    const ids = new Array<number>(rows.length * k).fill(0);
    const lps = new Array<number>(rows.length * k).fill(TOPK_EMPTY_LOGPROB);
    rows.forEach((row, i) => {
      row?.forEach(([id, lp], j) => {
        ids[i * k + j] = id;
        lps[i * k + j] = lp;
      });
    });
    msg.topkPromptLogprobs = create(TopkPromptLogprobsSchema, {
      tokenIds: int32Bytes(ids),
      logprobs: float32Bytes(lps),
      k,
      promptLength: rows.length,
    });
  }
  return toBinary(SampleResponseSchema, msg);
}
