/**
 * Rewording an {@link APIError}: the same class, status, headers, body, request and request id, with a message
 * that names what the caller was doing (the checkpoint that was not found, the name that already exists).
 *
 * @module
 */
import type { APIError, APIErrorInit } from "../core/errors.js";

/**
 * A copy of `err` (same class and fields, already redacted) with `message` instead of the generated one.
 *
 * @example
 * ```ts
 * const err = APIError.fromResponse({ status: 409, body: { detail: "exists" }, method: "POST", url });
 * throw rewordAPIError(err, "Checkpoint tinker://run-1/weights/a already exists. Pass { overwrite: true }.");
 * ```
 */
export function rewordAPIError<E extends APIError>(err: E, message: string): E {
  const Class = err.constructor as new (init: APIErrorInit) => E;
  return new Class({
    status: err.status,
    headers: err.headers,
    body: err.body,
    ...(err.method === undefined ? {} : { method: err.method }),
    ...(err.url === undefined ? {} : { url: err.url }),
    ...(err.requestId === undefined ? {} : { requestId: err.requestId }),
    message,
  });
}
