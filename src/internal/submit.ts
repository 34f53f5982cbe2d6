/**
 * Submitting a long operation: one POST that answers with a request id (retried by the transport with one
 * idempotency key and an unchanged body), then polling until the result. Every future-returning method goes
 * through {@link submitFuture}.
 *
 * @module
 */
import { randomUUID } from "node:crypto";
import type { z } from "zod";
import { APIFuture } from "../core/futures.js";
import { pollUntilSettled, type PollerContext, type ProtobufResult } from "./poll.js";
import type { RequestOptions } from "../core/options.js";
import { requestOptionsOf } from "./request-options.js";
import { UntypedAPIFutureSchema } from "./schemas.js";
import type { Transport, TransportCallback } from "./transport.js";

/** What a client needs to submit futures. */
export interface SubmitContext {
  transport: Transport;
  poller: PollerContext;
}

/** One future-returning operation. */
export interface SubmitSpec<T> {
  /** The operation, e.g. `"save_weights"` (used in errors and logs). */
  operation: string;
  /** The seq_id the request carries (0 for operations outside the training order). */
  seqId: number;
  /** The openapi-fetch call of the submit. */
  send: TransportCallback;
  /** The schema of the result. */
  schema: z.ZodType<T>;
  /** The caller's options: `signal` aborts the submit and `await`; `timeoutMs`/`maxRetries` apply to the submit. */
  options: RequestOptions;
  /** Runs the submit in order (the training client's seq gate); by default it runs at once. */
  gate?: (submit: () => Promise<string>) => Promise<string>;
  /** Rewrites a submit error (e.g. a 409 into a ConflictError that names the checkpoint). */
  mapSubmitError?: (err: unknown) => unknown;
  /** For results with a protobuf form: the poll headers and the decoder (a JSON result is still accepted). */
  protobuf?: ProtobufResult<T>;
}

/**
 * Submits an operation and returns its future, which starts polling once the submit is accepted.
 *
 * @example
 * ```ts
 * import { UnloadModelResponseSchema } from "./schemas.js";
 *
 * function unload(ctx: SubmitContext, modelId: string) {
 *   return submitFuture(ctx, {
 *     operation: "unload_model",
 *     seqId: 0,
 *     send: (init) => ctx.transport.api.POST("/api/v1/unload_model", { body: { model_id: modelId }, ...init }),
 *     schema: UnloadModelResponseSchema,
 *     options: {},
 *   });
 * }
 * ```
 */
export function submitFuture<T>(ctx: SubmitContext, spec: SubmitSpec<T>): APIFuture<T> {
  const { operation, options } = spec;
  const idempotencyKey = randomUUID();
  const submit = async (): Promise<string> => {
    try {
      const accepted = await ctx.transport.call(operation, spec.send, UntypedAPIFutureSchema, {
        ...requestOptionsOf(options),
        idempotencyKey,
      });
      return accepted.request_id;
    } catch (err) {
      throw spec.mapSubmitError === undefined ? err : spec.mapSubmitError(err);
    }
  };
  const requestId = spec.gate === undefined ? submit() : spec.gate(submit);
  const settled = requestId.then((id) =>
    pollUntilSettled(ctx.poller, id, operation, spec.schema, { retryBudgetMs: options.retryBudgetMs, protobuf: spec.protobuf }),
  );
  return new APIFuture({
    seqId: spec.seqId,
    operation,
    requestId,
    settled,
    wait: options.signal === undefined ? {} : { signal: options.signal },
  });
}
