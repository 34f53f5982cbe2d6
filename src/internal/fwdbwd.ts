/**
 * Dispatch of `forward` / `forward_backward` calls split into chunks (PROTOCOL §10.2, decisions 10 and 13).
 *
 * A call's k chunks take k consecutive seq ids when the method is called, and one turn of the seq gate that
 * covers them all. Inside that turn:
 * - parallel (`parallel_fwdbwd_chunks`): chunks 2..k are submitted concurrently, then chunk 1 (the lowest seq
 *   id) once all of them were accepted, as the SDK does; serial: lowest first, one after another;
 * - every submit passes the shared byte budget (`fwdbwd_dispatch_bytes_semaphore_size`);
 * - a split call (k > 1) keeps the turn until every chunk's result is in, so nothing queued after it is sent
 *   before we know all its chunks ran; if one chunk failed in any way, the client stops (fail-stop) and the
 *   call's future rejects with that chunk's error: no later operation is sent, so no step runs on partial
 *   gradients, and nothing hangs. Chunk 1 is never sent once another chunk's submit failed.
 * - an unsplit call releases the turn once its submit was accepted, like every other operation.
 *
 * The wire format of one chunk is the caller's (`sendChunk`: protobuf, encoded when the method is called).
 *
 * @module
 */
import { randomUUID } from "node:crypto";
import type { components } from "../core/wire.js";
import { pollUntilSettled, type PollerContext, type ProtobufResult } from "./poll.js";
import { ResponseValidationError } from "../core/errors.js";
import type { RequestOptions } from "../core/options.js";
import { requestOptionsOf } from "./request-options.js";
import { ForwardBackwardOutputSchema, UntypedAPIFutureSchema } from "./schemas.js";
import type { Transport, TransportCallback } from "./transport.js";
import { combineOutputs, MetricCombineError, type Chunk, type ForwardBackwardResult } from "./chunking.js";
import type { ByteBudget } from "./client-config.js";

type ForwardBackwardOutput = components["schemas"]["ForwardBackwardOutput"];

/** Sends chunk `index` (0-based): the openapi-fetch call of its submit (its body already carries its seq id). */
export type SendChunk = (index: number) => TransportCallback;

/** What a dispatch needs from its training client. */
export interface ChunkDispatchContext {
  transport: Transport;
  poller: PollerContext;
  /** The shared submit byte budget of the ServiceClient. */
  budget: ByteBudget;
  /** `parallel_fwdbwd_chunks` of the client config. */
  parallel: boolean;
}

/** One call to dispatch inside its turn. */
export interface ChunkDispatch {
  /** `"forward"` or `"forward_backward"` (used in errors). */
  operation: string;
  /** The seq id of chunk 1; chunk i has `firstSeqId + i`. */
  firstSeqId: number;
  chunks: Chunk[];
  sendChunk: SendChunk;
  /** How results are polled and decoded (protobuf, JSON still accepted). */
  protobuf: ProtobufResult<ForwardBackwardOutput>;
  options: RequestOptions;
  /** Called once, before the turn ends, when the call failed in a way that must stop the client. */
  onFatal: (cause: unknown) => void;
}

/** What a dispatched call gives back: chunk 1's request id and the combined result. */
export interface Dispatched {
  requestId: string;
  result: Promise<ForwardBackwardResult>;
}

/**
 * Submits (and, for a split call, awaits) every chunk of one call. Runs inside the call's turn.
 *
 * @throws the first chunk error (after `onFatal`), when a submit failed or, for a split call, any chunk failed.
 */
export async function dispatchChunks(ctx: ChunkDispatchContext, call: ChunkDispatch): Promise<Dispatched> {
  const { chunks, operation } = call;
  const k = chunks.length;
  const callOptions = requestOptionsOf(call.options);
  const submit = (i: number): Promise<string> => {
    const chunk = chunks[i]!;
    const idempotencyKey = randomUUID();
    return ctx.budget.run(chunk.bytes, async () => {
      const accepted = await ctx.transport.call(operation, call.sendChunk(i), UntypedAPIFutureSchema, {
        ...callOptions,
        idempotencyKey,
      });
      return accepted.request_id;
    });
  };
  const requestIds: string[] = new Array<string>(k);
  try {
    if (ctx.parallel && k > 1) {
      const rest = await Promise.allSettled(chunks.slice(1).map((_, j) => submit(j + 1)));
      const failed = rest.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failed !== undefined) throw failed.reason;
      rest.forEach((r, j) => {
        requestIds[j + 1] = (r as PromiseFulfilledResult<string>).value;
      });
      requestIds[0] = await submit(0);
    } else {
      for (let i = 0; i < k; i++) requestIds[i] = await submit(i);
    }
  } catch (err) {
    call.onFatal(err);
    throw err;
  }
  const polls = requestIds.map((id) =>
    pollUntilSettled(ctx.poller, id, operation, ForwardBackwardOutputSchema, {
      retryBudgetMs: call.options.retryBudgetMs,
      protobuf: call.protobuf,
    }),
  );
  for (const p of polls) p.catch(() => undefined);
  const combine = (results: ForwardBackwardOutput[]): ForwardBackwardResult => {
    try {
      return combineOutputs(results);
    } catch (err) {
      if (!(err instanceof MetricCombineError)) throw err;
      throw new ResponseValidationError({
        body: results.map((r) => r.metrics),
        reason: err.message,
        operation,
        secrets: ctx.poller.secrets,
      });
    }
  };
  if (k === 1) return { requestId: requestIds[0]!, result: polls[0]!.then((r) => combine([r])) };
  let results: ForwardBackwardOutput[];
  try {
    results = await Promise.all(polls);
  } catch (err) {
    call.onFatal(err);
    throw err;
  }
  const result = Promise.resolve().then(() => combine(results));
  result.catch(() => undefined);
  return { requestId: requestIds[0]!, result };
}
