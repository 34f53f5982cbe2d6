/**
 * SamplingClient: samples from a sampler checkpoint, a training checkpoint or a base model, and scores prompts
 * (PROTOCOL §10.4, decision 12).
 *
 * @module
 */
import { randomUUID } from "node:crypto";
import { z } from "zod";
import type { components } from "./core/wire.js";
import {
  APIConnectionError,
  APIError,
  APITimeoutError,
  APIUserAbortError,
  InvalidArgumentError,
  PromiseExpiredError,
  RateLimitError,
  ResponseValidationError,
} from "./core/errors.js";
import { APIFuture } from "./core/futures.js";
import type { RequestOptions } from "./core/options.js";
import { pollUntilSettled, type PollerContext, type ProtobufResult } from "./internal/poll.js";
import { requestOptionsOf } from "./internal/request-options.js";
import { decodeSampleResponse, type SampleResponse } from "./internal/proto/sample.js";
import { GetSamplerResponseSchema, UntypedAPIFutureSchema } from "./internal/schemas.js";
import type { SleepFn } from "./internal/sleep.js";
import type { Transport } from "./internal/transport.js";

type Schemas = components["schemas"];

/** A prompt: chunks of token ids (wire type `ModelInput`). A plain `number[]` is one `encoded_text` chunk. */
export type ModelInput = Schemas["ModelInput"];
/**
 * Sampling parameters (wire type): `{ max_tokens?, seed?, stop?: string | string[] | number[], temperature?: 1,
 * top_k?: -1, top_p?: 1 }`. Without `stop`, the base model's end-of-sequence tokens end a sample.
 */
export type SamplingParams = Schemas["SamplingParams"];
// The sample result types are declared with their decoder; re-exported here, as the public surface names them.
export type { SampledSequence, SampleResponse } from "./internal/proto/sample.js";
/** Result of `RestClient.getSampler`: `{ sampler_id, base_model, model_path? }`. */
export type GetSamplerResponse = Schemas["GetSamplerResponse"];

/** Sample requests of one sampling client in flight at once (submit + poll) unless `maxConcurrentRequests` says otherwise. */
export const DEFAULT_MAX_CONCURRENT_SAMPLES = 400;
/** Prompts estimated above this many bytes (10 per token) back off 5 s after a 429 instead of 1 s. */
export const LARGE_PROMPT_BYTES = 128 * 1024;
/** Outer retries of a sample (each with a new seq_id) after connection errors, 408, 410 and ≥500, by default. */
export const DEFAULT_SAMPLE_RETRIES = 4;
/** How long a sample keeps resending after 429s before it fails with the {@link RateLimitError}. */
export const SAMPLE_BACKPRESSURE_BUDGET_MS = 300_000;

/** Options of {@link SamplingClient.sample}. */
export interface SampleOptions extends RequestOptions {
  /** Also return the logprob of every prompt token (`null` at position 0). */
  includePromptLogprobs?: boolean;
  /** Also return the k most likely tokens at every prompt position (0 = none). */
  topkPromptLogprobs?: number;
  /** Outer retries, each with a new seq_id (default {@link DEFAULT_SAMPLE_RETRIES}; 0 = none). */
  maxRetries?: number;
}

/** Options of `ServiceClient.createSamplingClient` (one of `modelPath` and `baseModel` is required). */
export interface CreateSamplingClientOptions extends RequestOptions {
  /** A `tinker://<run>/sampler_weights/<name>` (or `.../weights/<name>`) checkpoint to sample from. */
  modelPath?: string;
  /** The base model to sample from (with `modelPath`: must be the checkpoint's). */
  baseModel?: string;
  /** Sample requests in flight at once (default {@link DEFAULT_MAX_CONCURRENT_SAMPLES}). */
  maxConcurrentRequests?: number;
}

/** @internal What sampling clients share with their service client. */
export interface SamplingContext {
  transport: Transport;
  poller: PollerContext;
  sleep: SleepFn;
  random: () => number;
  /** Client-wide 429 back-off: no sample is submitted before `until` (epoch ms). */
  backoff: { until: number };
}

/** A counting semaphore (FIFO). */
class Limiter {
  #free: number;
  readonly #waiting: Array<() => void> = [];
  constructor(n: number) {
    this.#free = n;
  }
  async acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }
  release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#free++;
  }
}

const sampleResultSchema = z.custom<SampleResponse>(() => false, {
  message: "the server sent a JSON SampleResponse; sample results are only accepted as protobuf (Accept: application/x-protobuf)",
});

const PROTOBUF: ProtobufResult<SampleResponse> = {
  headers: { accept: "application/x-protobuf", requestType: "Sample" },
  decode: decodeSampleResponse,
};

/** Checks a prompt and returns it as a wire `ModelInput`; also its estimated size in bytes (10 per token). */
function normalizePrompt(prompt: ModelInput | readonly number[], method: string): { input: ModelInput; tokens: number; estimate: number } {
  const input: ModelInput = Array.isArray(prompt)
    ? { chunks: [{ tokens: [...(prompt as readonly number[])], type: "encoded_text" }] }
    : (prompt as ModelInput);
  if (typeof input !== "object" || input === null || !Array.isArray(input.chunks)) {
    throw new InvalidArgumentError(
      `${method} needs a prompt: an array of token ids or a ModelInput { chunks: [{ type: "encoded_text", tokens }] }.`,
    );
  }
  let tokens = 0;
  let estimate = 0;
  input.chunks.forEach((chunk, i) => {
    if (chunk.type === "encoded_text" || (chunk.type === undefined && "tokens" in chunk)) {
      const toks = (chunk as Schemas["EncodedTextChunk"]).tokens;
      if (!Array.isArray(toks)) throw new InvalidArgumentError(`prompt.chunks[${i}].tokens must be an array of token ids.`);
      toks.forEach((t, j) => {
        if (!Number.isSafeInteger(t) || t < 0) {
          throw new InvalidArgumentError(`prompt.chunks[${i}].tokens[${j}] must be a non-negative integer token id, got ${String(t)}.`);
        }
      });
      tokens += toks.length;
      estimate += toks.length * 10;
    } else if (chunk.type === "image") {
      tokens += 1;
      estimate += (chunk as Schemas["ImageChunk"]).data.length;
    } else {
      tokens += 1;
      estimate += String((chunk as { dmel?: string }).dmel ?? "").length;
    }
  });
  if (tokens === 0) throw new InvalidArgumentError(`${method} needs a non-empty prompt (at least one token).`);
  return { input, tokens, estimate };
}

/** Checks sampling parameters and returns them in wire order with the service's defaults filled in. */
function normalizeParams(params: SamplingParams): SamplingParams {
  if (typeof params !== "object" || params === null) {
    throw new InvalidArgumentError("sample needs samplingParams, e.g. { max_tokens: 16, temperature: 0.7 }.");
  }
  const { max_tokens: maxTokens, seed, stop, temperature = 1, top_k: topK = -1, top_p: topP = 1 } = params;
  if (maxTokens !== undefined && maxTokens !== null && (!Number.isSafeInteger(maxTokens) || maxTokens < 1)) {
    throw new InvalidArgumentError(`samplingParams.max_tokens must be an integer ≥ 1, got ${String(maxTokens)}.`);
  }
  if (seed !== undefined && seed !== null && !Number.isInteger(seed)) {
    throw new InvalidArgumentError(`samplingParams.seed must be an integer, got ${String(seed)}.`);
  }
  if (typeof temperature !== "number" || !Number.isFinite(temperature) || temperature < 0) {
    throw new InvalidArgumentError(`samplingParams.temperature must be a finite number ≥ 0, got ${String(temperature)}.`);
  }
  if (!Number.isSafeInteger(topK) || topK < -1) {
    throw new InvalidArgumentError(`samplingParams.top_k must be -1 (no limit) or an integer ≥ 1, got ${String(topK)}.`);
  }
  if (typeof topP !== "number" || !(topP > 0 && topP <= 1)) {
    throw new InvalidArgumentError(`samplingParams.top_p must be in (0, 1], got ${String(topP)}.`);
  }
  if (stop !== undefined && stop !== null) {
    const ok =
      typeof stop === "string" ||
      (Array.isArray(stop) &&
        (stop.every((s) => typeof s === "string") || stop.every((s) => Number.isSafeInteger(s) && (s as number) >= 0)));
    if (!ok)
      throw new InvalidArgumentError(
        "samplingParams.stop must be a string, an array of strings, or an array of token ids (non-negative integers).",
      );
  }
  return {
    ...(maxTokens === undefined || maxTokens === null ? {} : { max_tokens: maxTokens }),
    ...(seed === undefined || seed === null ? {} : { seed }),
    ...(stop === undefined || stop === null ? {} : { stop }),
    temperature,
    top_k: topK,
    top_p: topP,
  };
}

/** Errors after which a sample is resubmitted with a new seq_id (as the SDK's retry handler does). */
function retryable(err: unknown): boolean {
  if (err instanceof APIUserAbortError) return false;
  if (err instanceof APIConnectionError || err instanceof APITimeoutError || err instanceof PromiseExpiredError) return true;
  return err instanceof APIError && (err.status === 408 || err.status >= 500);
}

/**
 * Samples from one model: a sampler checkpoint, a training checkpoint, or a base model. Get one from
 * `ServiceClient.createSamplingClient` or `TrainingClient.saveWeightsAndGetSamplingClient`.
 *
 * Requests run concurrently, at most `maxConcurrentRequests` at once (default {@link DEFAULT_MAX_CONCURRENT_SAMPLES});
 * each takes the next `seq_id` of this client (from 0), and a retry takes a new one. A 429 backs off every sampling
 * client of the same ServiceClient for 1 s (5 s for prompts over 128 KiB) and resends.
 *
 * @example
 * ```ts
 * const sampler = await service.createSamplingClient({ modelPath: "tinker://run-1/sampler_weights/final" });
 * const res = await sampler.sample([151644, 872], 2, { max_tokens: 16, temperature: 0.7, seed: 1 });
 * for (const s of res.sequences) console.log(s.stop_reason, s.tokens, s.logprobs);
 * ```
 */
export class SamplingClient {
  /** The sampling session (sampler) id the server gave this client. */
  readonly samplingSessionId: string;
  /** The checkpoint sampled from, or null when sampling the base model. */
  readonly modelPath: string | null;
  /** The base model, when known (null for a client created from `modelPath` alone: see `RestClient.getSampler`). */
  readonly baseModel: string | null;
  /** Sample requests in flight at once. */
  readonly maxConcurrentRequests: number;
  readonly #ctx: SamplingContext;
  readonly #limiter: Limiter;
  #seq = 0;

  /** @internal Use `ServiceClient.createSamplingClient` or `TrainingClient.saveWeightsAndGetSamplingClient`. */
  constructor(
    ctx: SamplingContext,
    init: { samplingSessionId: string; modelPath: string | null; baseModel: string | null; maxConcurrentRequests?: number | undefined },
  ) {
    this.#ctx = ctx;
    this.samplingSessionId = init.samplingSessionId;
    this.modelPath = init.modelPath;
    this.baseModel = init.baseModel;
    this.maxConcurrentRequests = checkConcurrency(init.maxConcurrentRequests);
    this.#limiter = new Limiter(this.maxConcurrentRequests);
  }

  /** The seq_id the next sample request will take. */
  get nextSeqId(): number {
    return this.#seq;
  }

  /**
   * Samples `numSamples` continuations of `prompt`.
   *
   * @throws {InvalidArgumentError} before sending: empty prompt, `numSamples` < 1, `max_tokens` < 1, `top_p` outside
   *   (0, 1], a negative `topkPromptLogprobs`.
   * @throws {BadRequestError} / {@link NotFoundError} (from the future) when the server refuses the request, e.g. the
   *   checkpoint was deleted; {@link RequestFailedError} when sampling failed; {@link RateLimitError} after 5 minutes of 429s.
   * @example
   * ```ts
   * const res = await sampler.sample([1, 2, 3], 4, { max_tokens: 8, temperature: 1, seed: 42 }, { includePromptLogprobs: true });
   * console.log(res.sequences.map((s) => s.tokens), res.prompt_logprobs); // prompt_logprobs[0] === null
   * ```
   */
  sample(
    prompt: ModelInput | readonly number[],
    numSamples: number,
    samplingParams: SamplingParams,
    options: SampleOptions = {},
  ): APIFuture<SampleResponse> {
    const { input, estimate } = normalizePrompt(prompt, "sample");
    if (!Number.isSafeInteger(numSamples) || numSamples < 1) {
      throw new InvalidArgumentError(`numSamples must be an integer ≥ 1, got ${String(numSamples)}.`);
    }
    const params = normalizeParams(samplingParams);
    const topk = options.topkPromptLogprobs ?? 0;
    if (!Number.isSafeInteger(topk) || topk < 0) {
      throw new InvalidArgumentError(`topkPromptLogprobs must be an integer ≥ 0, got ${String(topk)}.`);
    }
    const includePromptLogprobs = options.includePromptLogprobs ?? false;
    if (typeof includePromptLogprobs !== "boolean") {
      throw new InvalidArgumentError(`includePromptLogprobs must be a boolean, got ${String(includePromptLogprobs)}.`);
    }
    return this.#submit(input, estimate, numSamples, params, includePromptLogprobs, topk, options, (r) => r);
  }

  /**
   * The log-probability of every prompt token under this model (`null` at position 0): one sample request with
   * `max_tokens` 1 and prompt logprobs.
   *
   * @throws {InvalidArgumentError} before sending, for an empty prompt.
   * @example
   * ```ts
   * const lps = await sampler.computeLogprobs([151644, 872, 198]); // [null, lp(872 | 151644), lp(198 | 151644 872)]
   * ```
   */
  computeLogprobs(prompt: ModelInput | readonly number[], options: RequestOptions = {}): APIFuture<(number | null)[]> {
    const { input, estimate } = normalizePrompt(prompt, "computeLogprobs");
    return this.#submit(input, estimate, 1, { max_tokens: 1, temperature: 1, top_k: -1, top_p: 1 }, true, 0, options, (r) => {
      if (r.prompt_logprobs === null) {
        throw new ResponseValidationError({
          body: r,
          operation: "compute_logprobs",
          reason: "the server sent no prompt_logprobs although they were requested",
        });
      }
      return r.prompt_logprobs;
    });
  }

  #submit<T>(
    prompt: ModelInput,
    estimate: number,
    numSamples: number,
    params: SamplingParams,
    promptLogprobs: boolean,
    topk: number,
    options: SampleOptions,
    map: (r: SampleResponse) => T,
  ): APIFuture<T> {
    const firstSeq = this.#seq++;
    let resolveId!: (id: string) => void;
    let rejectId!: (err: unknown) => void;
    const requestId = new Promise<string>((resolve, reject) => {
      resolveId = resolve;
      rejectId = reject;
    });
    const maxRetries = options.maxRetries ?? DEFAULT_SAMPLE_RETRIES;
    const run = async (): Promise<T> => {
      await this.#limiter.acquire();
      try {
        for (let attempt = 0; ; attempt++) {
          const seq = attempt === 0 ? firstSeq : this.#seq++;
          const body = {
            num_samples: numSamples,
            prompt,
            sampling_params: params,
            sampling_session_id: this.samplingSessionId,
            seq_id: seq,
            prompt_logprobs: promptLogprobs,
            topk_prompt_logprobs: topk,
            type: "sample" as const,
          };
          try {
            const id = await this.#send(body, estimate, options);
            resolveId(id);
            return map(
              await pollUntilSettled(this.#ctx.poller, id, "sample", sampleResultSchema, {
                protobuf: PROTOBUF,
                retryBudgetMs: options.retryBudgetMs,
              }),
            );
          } catch (err) {
            if (!retryable(err) || attempt >= maxRetries || options.signal?.aborted === true || this.#ctx.poller.closed.aborted) throw err;
            const delay = Math.min(500 * 2 ** attempt, 10_000) * (1 - 0.25 * this.#ctx.random());
            await this.#ctx.sleep(delay, options.signal);
          }
        }
      } catch (err) {
        rejectId(err);
        throw err;
      } finally {
        this.#limiter.release();
      }
    };
    return new APIFuture({
      seqId: firstSeq,
      operation: "sample",
      requestId,
      settled: run(),
      wait: options.signal === undefined ? {} : { signal: options.signal },
    });
  }

  /** POSTs `/asample` (no HTTP retries); on 429 backs the whole client off and resends the same body. */
  async #send(body: Record<string, unknown>, estimate: number, options: RequestOptions): Promise<string> {
    const ctx = this.#ctx;
    const started = Date.now();
    const idempotencyKey = randomUUID();
    for (;;) {
      const wait = ctx.backoff.until - Date.now();
      if (wait > 0) await ctx.sleep(wait, options.signal);
      try {
        const accepted = await ctx.transport.call(
          "sample",
          (init) => ctx.transport.api.POST("/api/v1/asample", { body: body as never, ...init }),
          UntypedAPIFutureSchema,
          { ...requestOptionsOf(options), maxRetries: 0, idempotencyKey, headers: { "X-Tinker-Sampling-Backpressure": "1" } },
        );
        return accepted.request_id;
      } catch (err) {
        if (!(err instanceof RateLimitError) || Date.now() - started > SAMPLE_BACKPRESSURE_BUDGET_MS) throw err;
        ctx.backoff.until = Math.max(ctx.backoff.until, Date.now() + (estimate <= LARGE_PROMPT_BYTES ? 1000 : 5000));
      }
    }
  }
}

/**
 * @internal Checks a `maxConcurrentRequests` option (default {@link DEFAULT_MAX_CONCURRENT_SAMPLES}).
 *
 * @example
 * ```ts
 * checkConcurrency(undefined); // 400
 * ```
 */
export function checkConcurrency(n: number | undefined): number {
  if (n === undefined) return DEFAULT_MAX_CONCURRENT_SAMPLES;
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`maxConcurrentRequests must be an integer ≥ 1, got ${String(n)}.`);
  return n;
}

/**
 * `GET /api/v1/samplers/{id}` (used by `RestClient.getSampler`).
 *
 * @example
 * ```ts
 * const info = await fetchSampler(transport, "sess-1:sample:0", {});
 * ```
 */
export function fetchSampler(transport: Transport, samplerId: string, options: RequestOptions): Promise<GetSamplerResponse> {
  if (typeof samplerId !== "string" || samplerId.trim() === "") {
    throw new InvalidArgumentError("getSampler needs a sampler id (SamplingClient.samplingSessionId).");
  }
  return transport.call(
    "get_sampler",
    (init) => transport.api.GET("/api/v1/samplers/{sampler_id}", { params: { path: { sampler_id: samplerId } }, ...init }),
    GetSamplerResponseSchema,
    requestOptionsOf(options),
  );
}
