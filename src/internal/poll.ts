/**
 * The poller of futures: polls `retrieve_future` until the request settles, reading each answer once (status,
 * headers, body) and deciding on it here.
 *
 * A training POST answers at once with a request id. {@link APIFuture} starts polling as soon as the
 * request id is known (so results are cached even if nobody awaits yet) and settles once:
 *
 * | poll answer | what the poller does |
 * |---|---|
 * | 200 `type: "try_again"` | report `queue_state`; poll again at once (the server long-polls) |
 * | 200 with an `error` key | fail with {@link RequestFailedError} (its `category`) |
 * | 200 `status: "complete_metadata"` | poll again with `allow_metadata_only: false` |
 * | other 200 | validate with the operation's schema and resolve |
 * | 408 | report `queue_state`; poll again at once |
 * | ≥500 | poll again after a small floor ({@link FIVE_XX_FLOOR_MS}) |
 * | 429 | back off exponentially, capped at 30 s |
 * | connection error, poll timeout | back off likewise; give up only when the failures in a row have lasted the retry budget (default 300 s); any answer resets it |
 * | 402 | fail with the 402 {@link APIError}: the transport below has already waited 402s out for the client's billing window (one incident per client, as the SDK) |
 * | 400 | poll again up to 3 times (proxies inject stray 400s), then fail |
 * | 410 | fail with {@link PromiseExpiredError}: resubmit the request |
 * | other 4xx | fail with the matching {@link APIError} |
 *
 * @module
 */
import type { z } from "zod";
import {
  APIConnectionError,
  APIError,
  APIUserAbortError,
  PromiseExpiredError,
  RequestFailedError,
  ResponseValidationError,
} from "../core/errors.js";
import type { QueueState, QueueStateChange } from "../core/futures.js";
import { type BackoffPolicy, backoffMs } from "./backoff.js";
import { redact } from "./redact.js";
import type { SleepFn } from "./sleep.js";
import type { TransportAnswer } from "./transport.js";

/** One answer to a `retrieve_future` poll, read once (a {@link TransportAnswer} fits). */
export interface PollAnswer {
  status: number;
  headers: Headers;
  /** Parsed JSON, text, or undefined when empty. */
  body: unknown;
  /** Set when a 2xx body is not JSON: the parse error. */
  jsonError?: unknown;
  /** The body of a 2xx `application/x-protobuf` answer. */
  protobuf?: Uint8Array;
}

/** Extra headers of a poll: what the result may come as, and the request type (both as the Python SDK sends them). */
export interface PollHeaders {
  /** `Accept`, e.g. `application/x-protobuf` for results that have a protobuf form. */
  accept?: string;
  /** `X-Tinker-Request-Type`, e.g. `ForwardBackward`. */
  requestType?: string;
  /** `X-Tinker-Request-Iteration`: 0 for the first poll of a future, then 1, 2, ... */
  iteration?: number;
}

/** `X-Tinker-Request-Type` of each operation's polls, as the Python SDK names them (PROTOCOL §2.1). */
const REQUEST_TYPES: Readonly<Record<string, string>> = {
  create_model: "CreateModel",
  load_weights: "LoadWeights",
  save_weights: "SaveWeights",
  save_weights_for_sampler: "SaveWeightsForSampler",
  optim_step: "OptimStep",
  forward_backward: "ForwardBackward",
  forward: "Forward",
  sample: "Sample",
};

/** How a result with a protobuf form is polled and decoded. */
export interface ProtobufResult<T> {
  /** Poll headers (`accept` is `application/x-protobuf`). */
  headers: PollHeaders;
  /** Decodes the protobuf body; throws (any error) when it is malformed. */
  decode: (bytes: Uint8Array) => T;
}

/** How a future polls: one `retrieve_future` request, no retries (the poller owns them). */
export type PollOnce = (
  body: { request_id: string; allow_metadata_only: boolean },
  signal: AbortSignal,
  headers?: PollHeaders,
) => Promise<PollAnswer>;

/** What a poller needs from its client. */
export interface PollerContext {
  pollOnce: PollOnce;
  sleep: SleepFn;
  random: () => number;
  /** Called on every queue-state change. */
  onQueueStateChange?: ((change: QueueStateChange) => void) | undefined;
  /** Debounced log of paused states (e.g. "paused: capacity"). */
  logPaused?: ((change: QueueStateChange) => void) | undefined;
  /** Secrets to keep out of error messages. */
  secrets: readonly (string | undefined)[];
  /** Aborted when the owning client closes. */
  closed: AbortSignal;
  /** How long connection failures in a row may last before a poll gives up (ms; default 300 000). */
  retryBudgetMs?: number;
  /** Clock of the budget (ms; default `Date.now`). */
  now?: () => number;
}

/** Floor under immediate re-polls after a 5xx, so a broken server is not hammered. */
export const FIVE_XX_FLOOR_MS = 50;
/** Cap of the backoff after 429s and connection errors. */
export const MAX_POLL_BACKOFF_MS = 30_000;
/** Backoff of polling after 429s and connection errors: from 500 ms, doubling, capped at 30 s, minus up to 25 %. */
export const POLL_BACKOFF: BackoffPolicy = { initialMs: 500, maxMs: MAX_POLL_BACKOFF_MS, jitter: 0.25 };
/** How long connection failures in a row may last before a poll gives up, unless configured otherwise (ms). */
export const DEFAULT_POLL_RETRY_BUDGET_MS = 300_000;
const MAX_STRAY_400 = 3;

const DEFAULT_REASONS: Record<string, string> = {
  paused_capacity: "Tinker backend is running short on capacity, please wait",
  paused_rate_limit: "concurrent training clients rate limit hit",
};

function toQueueState(value: unknown): QueueState | undefined {
  if (value === undefined || value === null) return undefined;
  if (value === "active" || value === "paused_capacity" || value === "paused_rate_limit") return value;
  return "unknown";
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Polls one request until it settles. Exported for the clients; users see {@link APIFuture}.
 *
 * @throws {@link RequestFailedError}, {@link PromiseExpiredError}, {@link APIError},
 *   {@link APIConnectionError}, {@link ResponseValidationError}, {@link APIUserAbortError} (client closed).
 */
export async function pollUntilSettled<T>(
  ctx: PollerContext,
  requestId: string,
  operation: string,
  schema: z.ZodType<T>,
  options: { retryBudgetMs?: number | undefined; protobuf?: ProtobufResult<T> | undefined } = {},
): Promise<T> {
  const protobuf = options.protobuf;
  const now = ctx.now ?? Date.now;
  const budgetMs = options.retryBudgetMs ?? ctx.retryBudgetMs ?? DEFAULT_POLL_RETRY_BUDGET_MS;
  let failingSince: number | undefined;
  // Like the Python SDK: a large result may first come as metadata only; then the full result is asked for.
  let allowMetadataOnly = true;
  let iteration = 0;
  let backoffExp = 0;
  let connectionFailures = 0;
  let stray400 = 0;
  let lastState: QueueState | undefined;
  const report = (raw: unknown): void => {
    if (!isRecord(raw)) return;
    const state = toQueueState(raw["queue_state"]);
    if (state === undefined || state === lastState) return;
    lastState = state;
    const given = raw["queue_state_reason"];
    const reason = typeof given === "string" && given !== "" ? redact(given, ctx.secrets) : DEFAULT_REASONS[state];
    const change: QueueStateChange = { requestId, operation, queueState: state, reason };
    ctx.onQueueStateChange?.(change);
    if (state !== "active") ctx.logPaused?.(change);
  };
  for (;;) {
    if (ctx.closed.aborted) {
      throw new APIUserAbortError({
        subject: `Waiting for ${operation} request ${requestId}`,
        message: `Stopped waiting for ${operation} request ${requestId}: the client was closed. The server may still complete the work.`,
      });
    }
    let answer: PollAnswer;
    try {
      const requestType = protobuf?.headers.requestType ?? REQUEST_TYPES[operation];
      const headers: PollHeaders = { ...protobuf?.headers, iteration: iteration++, ...(requestType === undefined ? {} : { requestType }) };
      answer = await ctx.pollOnce({ request_id: requestId, allow_metadata_only: allowMetadataOnly }, ctx.closed, headers);
    } catch (err) {
      if (ctx.closed.aborted) continue; // reported at the top of the loop
      if (!(err instanceof APIConnectionError)) throw err;
      connectionFailures++;
      const t = now();
      failingSince ??= t;
      const spent = t - failingSince;
      if (spent >= budgetMs) {
        throw new APIConnectionError({
          subject: `Polling ${operation} request ${requestId}`,
          cause: err,
          attempts: connectionFailures,
          secrets: ctx.secrets,
          message: `Polling ${operation} request ${requestId} failed ${connectionFailures} times in a row over ${Math.round(spent / 1000)} s (${err.message}). The server may still complete the work: await the operation again later or check the server (a checkpoint listing shows whether a save landed) before resubmitting.`,
        });
      }
      await ctx.sleep(Math.min(backoffMs(backoffExp++, POLL_BACKOFF, ctx.random), budgetMs - spent), ctx.closed).catch(() => undefined);
      continue;
    }
    // An answer, whatever it says, ends a run of connection failures.
    connectionFailures = 0;
    failingSince = undefined;
    const { status, body } = answer;
    if (status >= 200 && status < 300) {
      backoffExp = 0;
      if (answer.protobuf !== undefined) {
        if (protobuf === undefined) {
          throw new ResponseValidationError({
            body: `<${answer.protobuf.length} bytes of protobuf>`,
            operation,
            reason: "the server sent a protobuf result that was not asked for",
            secrets: ctx.secrets,
          });
        }
        try {
          return protobuf.decode(answer.protobuf);
        } catch (err) {
          throw new ResponseValidationError({
            body: `<${answer.protobuf.length} bytes of protobuf>`,
            operation,
            reason: `the protobuf result cannot be decoded: ${err instanceof Error ? err.message : String(err)}`,
            cause: err,
            secrets: ctx.secrets,
          });
        }
      }
      if (answer.jsonError !== undefined) {
        throw new ResponseValidationError({
          body,
          reason: "the retrieve_future body is not JSON",
          operation: "retrieve_future",
          cause: answer.jsonError,
        });
      }
      if (isRecord(body) && body["type"] === "try_again") {
        report(body);
        continue;
      }
      if (isRecord(body) && "error" in body) {
        throw new RequestFailedError({
          requestId,
          operation,
          category: typeof body["category"] === "string" ? body["category"] : undefined,
          error: typeof body["error"] === "string" ? body["error"] : JSON.stringify(body["error"]),
          secrets: ctx.secrets,
        });
      }
      if (isRecord(body) && body["status"] === "complete_metadata") {
        if (!allowMetadataOnly) {
          // We asked for the full payload and still got metadata: the server misbehaves.
          throw new ResponseValidationError({
            body,
            operation,
            reason: "the server sent a metadata-only reply although the full result was requested",
            secrets: ctx.secrets,
          });
        }
        allowMetadataOnly = false;
        continue;
      }
      const parsed = schema.safeParse(body);
      if (!parsed.success) {
        throw new ResponseValidationError({ body, zodError: parsed.error, operation, secrets: ctx.secrets });
      }
      return parsed.data;
    }
    if (status === 408) {
      report(body);
      continue;
    }
    if (status === 410) {
      throw new PromiseExpiredError({
        requestId,
        body,
        headers: answer.headers,
        method: "POST",
        url: "/api/v1/retrieve_future",
        secrets: ctx.secrets,
      });
    }
    if (status === 429) {
      await ctx.sleep(backoffMs(backoffExp++, POLL_BACKOFF, ctx.random), ctx.closed).catch(() => undefined);
      continue;
    }
    if (status >= 500) {
      await ctx.sleep(FIVE_XX_FLOOR_MS, ctx.closed).catch(() => undefined);
      continue;
    }
    if (status === 400 && stray400 < MAX_STRAY_400) {
      stray400++;
      continue;
    }
    throw APIError.fromResponse({
      status,
      body,
      headers: answer.headers,
      method: "POST",
      url: "/api/v1/retrieve_future",
      secrets: ctx.secrets,
      message: undefined,
    });
  }
}
