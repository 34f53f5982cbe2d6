/**
 * Reading the answer of `GET .../checkpoints/.../archive`: a 302 to the signed URL (`Location`, `Expires`) or a 200
 * `{ url, expires }`, with `expires` an ISO string or Unix seconds.
 *
 * @module
 */
import { z } from "zod";
import { ResponseValidationError } from "../core/errors.js";
import type { TransportAnswer } from "./transport.js";

/** A tolerant form of the 200 archive answer: `expires` may be an ISO string or a Unix time in seconds. */
const ArchiveJsonSchema = z.object({
  url: z.string().min(1),
  expires: z.union([z.string(), z.number()]),
});

/** An ISO timestamp from an ISO string or Unix seconds; `undefined` when it is not a date. */
function toIso(value: string | number): string | undefined {
  const ms = typeof value === "number" ? value * 1000 : Date.parse(value);
  if (!Number.isFinite(ms)) return undefined;
  return new Date(ms).toISOString();
}

/**
 * The signed URL from a 302 (`Location`, `Expires`) or a 200 (`{ url, expires }`) archive answer of `tinkerPath`;
 * a 302 without `Expires` is taken to last `defaultLifetimeMs`. An answer of neither shape is a
 * `ResponseValidationError`.
 *
 * @example
 * ```ts
 * const answer = await transport.answer(
 *   "get_checkpoint_archive_url",
 *   (init) => transport.api.GET("/api/v1/training_runs/{training_run_id}/checkpoints/{checkpoint_kind}/{checkpoint_name}/archive", {
 *     params: { path: { training_run_id: "run-1", checkpoint_kind: "weights", checkpoint_name: "final" } },
 *     ...init,
 *   }),
 *   { redirect: "manual" },
 * );
 * const { url, expires } = readArchiveAnswer(answer, "tinker://run-1/weights/final", 15 * 60_000);
 * ```
 */
export function readArchiveAnswer(
  answer: TransportAnswer,
  tinkerPath: string,
  defaultLifetimeMs: number,
): { url: string; expires: string } {
  const where = { method: "GET", url: answer.url ?? "", operation: "get_checkpoint_archive_url" };
  if (answer.status >= 300 && answer.status < 400) {
    const location = answer.headers.get("location");
    if (location === null || location.trim() === "") {
      throw new ResponseValidationError({
        ...where,
        body: undefined,
        reason: `a ${answer.status} redirect without a Location header for ${tinkerPath}`,
      });
    }
    let url: string;
    try {
      url = new URL(location, answer.url === undefined || answer.url === "" ? undefined : answer.url).toString();
    } catch (cause) {
      throw new ResponseValidationError({ ...where, body: undefined, reason: `the Location header is not a URL`, cause });
    }
    const expiresHeader = answer.headers.get("expires");
    const parsed = expiresHeader === null ? Number.NaN : Date.parse(expiresHeader);
    const expires = Number.isFinite(parsed) ? new Date(parsed).toISOString() : new Date(Date.now() + defaultLifetimeMs).toISOString();
    return { url, expires };
  }
  if (answer.jsonError !== undefined || answer.body === undefined) {
    throw new ResponseValidationError({ ...where, body: answer.body ?? "", reason: "the body is not JSON", cause: answer.jsonError });
  }
  const json = answer.body;
  const parsed = ArchiveJsonSchema.safeParse(json);
  if (!parsed.success) throw new ResponseValidationError({ ...where, body: json, zodError: parsed.error });
  const expires = toIso(parsed.data.expires);
  if (expires === undefined) {
    throw new ResponseValidationError({ ...where, body: json, reason: `"expires" is not a date: ${JSON.stringify(parsed.data.expires)}` });
  }
  return { url: parsed.data.url, expires };
}
