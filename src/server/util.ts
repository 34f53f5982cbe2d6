/**
 * Small helpers shared by the local server modules: errors that map to HTTP answers, id and file-name
 * encoding, `tinker://` path parsing, time formatting and durable file writes.
 *
 * @module
 */

import { randomBytes } from "node:crypto";
import { open, rename, mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import {
  CHECKPOINT_NAME_MAX_LENGTH,
  CHECKPOINT_NAME_MIN_LENGTH,
  CHECKPOINT_NAME_PATTERN,
  CHECKPOINT_NAME_RULE,
} from "../../generated/constants.js";

/** An error that the HTTP layer turns into a JSON error answer `{detail, field?}` with `status`. */
export class HttpError extends Error {
  /** The HTTP status to answer with. */
  readonly status: number;
  /** The request field at fault (e.g. `body.seq_id`), when there is one. */
  readonly field: string | undefined;
  /** Extra response headers (e.g. `Retry-After`). */
  readonly headers: Record<string, string>;

  /** Creates an error answered as `status` with `{detail: message, field}`. */
  constructor(status: number, message: string, options: { field?: string; headers?: Record<string, string> } = {}) {
    super(message);
    this.name = "HttpError";
    this.status = status;
    this.field = options.field;
    this.headers = options.headers ?? {};
  }
}

/** An error raised while executing an operation that the user caused (a failed future with category "user"). */
export class UserOpError extends Error {
  /** Creates a user-caused operation failure. */
  constructor(message: string) {
    super(message);
    this.name = "UserOpError";
  }
}

/** The two checkpoint kinds, as they appear in checkpoint ids and paths. */
export type CheckpointKind = "weights" | "sampler_weights";

/** A parsed `tinker://<run>/<kind>/<name>` path. */
export type ParsedTinkerPath = { runId: string; kind: CheckpointKind; name: string; checkpointId: string };

/**
 * Parses `tinker://<training_run_id>/<weights|sampler_weights>/<name>` exactly as the Python SDK does
 * (three `/`-separated parts, no empty part); returns a message describing the problem otherwise.
 */
export function parseTinkerPath(path: string): ParsedTinkerPath | string {
  const prefix = "tinker://";
  if (!path.startsWith(prefix)) return `must start with "tinker://", got ${JSON.stringify(path)}`;
  const parts = path.slice(prefix.length).split("/");
  if (parts.length !== 3)
    return `must have the form tinker://<training_run_id>/<weights|sampler_weights>/<name>, got ${JSON.stringify(path)}`;
  const [runId, kind, name] = parts as [string, string, string];
  if (kind !== "weights" && kind !== "sampler_weights") {
    return `checkpoint kind must be "weights" or "sampler_weights", got ${JSON.stringify(kind)} in ${JSON.stringify(path)}`;
  }
  if (runId === "" || name === "") return `has an empty training run id or checkpoint name: ${JSON.stringify(path)}`;
  return { runId, kind, name, checkpointId: `${kind}/${name}` };
}

/** Builds `tinker://<run>/<kind>/<name>`. */
export function tinkerPath(runId: string, kind: CheckpointKind, name: string): string {
  return `tinker://${runId}/${kind}/${name}`;
}

const CHECKPOINT_NAME_RE = new RegExp(CHECKPOINT_NAME_PATTERN, "u");

/**
 * Checks a checkpoint name against the spec's rule (`components.schemas.CheckpointName`, the same rule the
 * SDK enforces); returns a message when it cannot be used.
 */
export function checkCheckpointName(name: string): string | undefined {
  const ok =
    typeof name === "string" &&
    name.length >= CHECKPOINT_NAME_MIN_LENGTH &&
    name.length <= CHECKPOINT_NAME_MAX_LENGTH &&
    CHECKPOINT_NAME_RE.test(name);
  if (ok) return undefined;
  const shown =
    typeof name === "string" && name.length > 60
      ? `${JSON.stringify(name.slice(0, 60))}… (${name.length} characters)`
      : JSON.stringify(name);
  return `must be ${CHECKPOINT_NAME_RULE}; got ${shown}`;
}

/**
 * Encodes an arbitrary id as a portable file name: `[A-Za-z0-9_-]` stay, every other UTF-8 byte becomes
 * `%XX`. The result never contains `.`, `:` or `/`, so `.` can separate a generation suffix.
 */
export function encodeFileName(id: string): string {
  let out = "";
  for (const byte of Buffer.from(id, "utf8")) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9_-]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** Inverse of {@link encodeFileName}; returns undefined for a name it did not produce. */
export function decodeFileName(name: string): string | undefined {
  if (!/^(?:[A-Za-z0-9_-]|%[0-9A-F]{2})*$/.test(name)) return undefined;
  try {
    return decodeURIComponent(name);
  } catch {
    return undefined;
  }
}

/** A random lower-case hex string of `bytes` bytes. */
export function randomHex(bytes: number): string {
  return randomBytes(bytes).toString("hex");
}

/** Formats epoch milliseconds as an ISO-8601 UTC timestamp. */
export function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** True for a plain (non-array, non-null) object. */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** fsyncs a file or directory; directories that cannot be opened for sync (some platforms) are skipped. */
export async function fsyncPath(path: string): Promise<void> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(path, "r");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EISDIR" || code === "EPERM" || code === "EACCES") return;
    throw err;
  }
  try {
    await fh.sync();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "EINVAL" && code !== "EPERM" && code !== "EBADF") throw err;
  } finally {
    await fh.close();
  }
}

/** Writes `data` to a new file at `path` and fsyncs it (the file must not exist). */
export async function writeFileSynced(path: string, data: string | Uint8Array): Promise<void> {
  const fh = await open(path, "wx", 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Replaces `path` atomically: writes a sibling temp file, fsyncs it, renames it over `path`, fsyncs the
 * directory. A crash leaves either the old or the new content (and possibly a `*.tmp-*` sibling, which
 * start-up cleaning removes).
 */
export async function atomicWriteFile(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${randomHex(6)}`;
  await writeFileSynced(tmp, data);
  await rename(tmp, path);
  await fsyncPath(dirname(path));
}

/** `mkdir -p` that also fsyncs the parent of every directory it creates. */
export async function mkdirDurable(path: string): Promise<void> {
  const first = await mkdir(path, { recursive: true });
  if (first === undefined) return;
  // fsync every parent from the first created directory down to `path`.
  let cur = path;
  const created: string[] = [];
  while (cur.length >= first.length) {
    created.push(cur);
    const parent = dirname(cur);
    if (parent === cur) break;
    cur = parent;
  }
  for (const dir of created.reverse()) await fsyncPath(dirname(dir));
}

/** A promise plus its resolver (Node 20 has no `Promise.withResolvers`). */
export function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (err: unknown) => void } {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
