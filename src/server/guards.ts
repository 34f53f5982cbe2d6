/**
 * Input guards of the local server, applied before a request reaches schema validation:
 *
 * | guard | rule | answer |
 * |---|---|---|
 * | JSON nesting | at most {@link MAX_JSON_DEPTH} levels of `[`/`{` | 400, field `body` |
 * | Content-Type | a non-empty body to a JSON route must be `application/json` (or `…+json`); absent is read as JSON; `application/x-protobuf` only on {@link PROTOBUF_BODY_OPERATIONS} | 415 |
 * | `seq_id` of training ops | an integer in 1..{@link MAX_SEQ_ID} (int32 on the wire) | 400, field `body.seq_id` |
 * | `seq_id` far ahead | at most {@link MAX_SEQ_AHEAD} beyond the model's next due seq_id | 400, field `body.seq_id` |
 * | checkpoint names | the spec's `CheckpointName` rule (`checkCheckpointName`) in `path.checkpoint_name` and the `path` of save_weights / save_weights_for_sampler | 400 naming the field |
 *
 * @module
 */

import { checkCheckpointName, HttpError, isRecord } from "./util.js";

/** Deepest accepted nesting of arrays and objects in a JSON body (real requests need about 8). */
export const MAX_JSON_DEPTH = 64;

/** Largest `seq_id` (the wire type is int32). */
export const MAX_SEQ_ID = 2 ** 31 - 1;

/**
 * How far beyond the model's next due seq_id a training op may be submitted. A client has at most a
 * few hundred ops in flight (chunks of one forward_backward included); anything further ahead is a bug
 * that would otherwise make the model wait for (and finally skip) thousands of seq ids.
 */
export const MAX_SEQ_AHEAD = 10_000;

/** Training operations ordered by `seq_id` (their `seq_id` is checked by {@link checkSeqIdValue}). */
export const SEQUENCED_OPERATIONS: ReadonlySet<string> = new Set([
  "forwardBackward",
  "forward",
  "optimStep",
  "saveWeights",
  "loadWeights",
  "saveWeightsForSampler",
]);

/** Operations whose body may also be `application/x-protobuf` (decoded by the operation's own code). */
export const PROTOBUF_BODY_OPERATIONS: ReadonlySet<string> = new Set(["forwardBackward", "forward"]);

const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Whether the JSON text in `buf` nests arrays/objects deeper than `limit` (a scan of the bytes, so it
 * is safe to call before `JSON.parse`; brackets inside strings are ignored).
 */
export function jsonTooDeep(buf: Uint8Array, limit: number = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i]!;
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === OPEN_BRACKET || c === OPEN_BRACE) {
      if (++depth > limit) return true;
    } else if (c === CLOSE_BRACKET || c === CLOSE_BRACE) {
      depth--;
    }
  }
  return false;
}

/** The error for a body nested deeper than {@link MAX_JSON_DEPTH}. */
export function tooDeepError(): HttpError {
  return new HttpError(400, `request body nests arrays/objects more than ${MAX_JSON_DEPTH} levels deep; no Tinker request needs that`, {
    field: "body",
  });
}

/**
 * Checks the Content-Type of a request with a non-empty body for a route that takes a body; returns the
 * 415 to answer, or undefined when the type is acceptable.
 */
export function contentTypeError(operationId: string, template: string, contentType: string | undefined): HttpError | undefined {
  if (contentType === undefined || contentType.trim() === "") return undefined;
  const type = contentType.split(";")[0]!.trim().toLowerCase();
  if (type === "application/json" || /^application\/[a-z0-9.+-]+\+json$/.test(type)) return undefined;
  const protobuf = PROTOBUF_BODY_OPERATIONS.has(operationId);
  if (protobuf && type === "application/x-protobuf") return undefined;
  return new HttpError(
    415,
    `unsupported Content-Type ${JSON.stringify(type)} for ${template}; send the body as application/json` +
      (protobuf ? " or application/x-protobuf" : ""),
  );
}

/** Why `value` is not an acceptable `seq_id` (an integer in 1..{@link MAX_SEQ_ID}), or undefined. */
export function seqIdProblem(value: unknown): string | undefined {
  if (typeof value !== "number" || !Number.isInteger(value)) {
    return `must be an integer between 1 and ${MAX_SEQ_ID}, got ${JSON.stringify(value) ?? String(value)}`;
  }
  if (value < 1 || value > MAX_SEQ_ID) return `must be between 1 and ${MAX_SEQ_ID} (an int32), got ${value}`;
  return undefined;
}

/**
 * Checks the `seq_id` of a training op against its model: an int32 ≥ 1 and at most {@link MAX_SEQ_AHEAD}
 * beyond `next`, the model's next due seq_id (a repeat of an accepted seq_id always passes: `next` only
 * grows). Returns the 400 to answer, or undefined.
 */
export function seqIdError(seqId: number, next: number, modelId: string): HttpError | undefined {
  const problem = seqIdProblem(seqId);
  if (problem !== undefined) return new HttpError(400, `body.seq_id: ${problem}`, { field: "body.seq_id" });
  if (seqId <= next + MAX_SEQ_AHEAD) return undefined;
  return new HttpError(
    400,
    `body.seq_id: ${seqId} is implausibly far ahead of model ${modelId}'s next due seq_id ${next} (at most ${MAX_SEQ_AHEAD} ahead); ` +
      "number training requests consecutively from 1 after create_model",
    { field: "body.seq_id" },
  );
}

/**
 * Checks a present `seq_id` of a sequenced operation's JSON body; returns the 400 to answer, or
 * undefined (also when the operation is not sequenced or the field is absent).
 */
export function checkSeqIdValue(operationId: string, body: unknown): HttpError | undefined {
  if (!SEQUENCED_OPERATIONS.has(operationId) || !isRecord(body) || !("seq_id" in body)) return undefined;
  const problem = seqIdProblem(body.seq_id);
  return problem === undefined ? undefined : new HttpError(400, `body.seq_id: ${problem}`, { field: "body.seq_id" });
}

/** Operations whose body field `path` is a checkpoint name (not a tinker path). */
const NAME_BODY_OPERATIONS: ReadonlySet<string> = new Set(["saveWeights", "saveWeightsForSampler"]);

/**
 * Checks the checkpoint names of a request (the `checkpoint_name` path parameter, and the `path` of the
 * save operations); returns the 400 to answer, or undefined.
 */
export function checkNameFields(operationId: string, params: Record<string, string>, body: unknown): HttpError | undefined {
  const param = params.checkpoint_name;
  if (param !== undefined) {
    const bad = checkCheckpointName(param);
    if (bad !== undefined) return new HttpError(400, `path.checkpoint_name: the checkpoint name ${bad}`, { field: "path.checkpoint_name" });
  }
  if (NAME_BODY_OPERATIONS.has(operationId) && isRecord(body) && typeof body.path === "string") {
    const bad = checkCheckpointName(body.path);
    if (bad !== undefined) return new HttpError(400, `body.path: the checkpoint name ${bad}`, { field: "body.path" });
  }
  return undefined;
}
