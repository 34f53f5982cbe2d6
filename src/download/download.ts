/**
 * Checkpoint download: signed URL → streamed, resumable download → safe extraction → atomic install.
 *
 * The archive is fetched from the signed URL that the archive endpoint hands out, with a GET that carries no
 * credentials ({@link leanGet}: the socket reads into one fixed buffer), and streamed straight into a
 * fixed-memory extractor ({@link StreamingUntar}), like `curl | tar -x`, into a temporary sibling directory
 * of the destination. Nothing is allocated per chunk and nothing is written twice, so memory stays flat
 * whatever the archive size. An interrupted transfer resumes with HTTP `Range` and keeps feeding the same
 * extractor, since the bytes arrive in order; a host that cannot resume makes the extraction start over. The
 * result is checked for the `checkpoint_complete` marker and only then renamed into place. Every failure path
 * (including an abort) closes the files and removes the temporary directory.
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import { lstat, mkdir, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import {
  APIConnectionError,
  APIError,
  APITimeoutError,
  APIUserAbortError,
  InvalidArgumentError,
  NotFoundError,
  ProxyError,
  TinkerError,
} from "../core/errors.js";
import { ArchiveChangedError, DestinationExistsError, IncompleteCheckpointError } from "./errors.js";
import { leanGet, type LeanResponse } from "../internal/net/lean-http.js";
import { envProxySettings, isFinalProxyError, resolveProxySettings, type ProxySettings } from "../internal/net/proxy.js";
import { backoffMs } from "../internal/backoff.js";
import { abortableSleep } from "../internal/sleep.js";
import type { RequestObserver } from "../internal/log.js";
import { parseTinkerPath } from "../core/tinker-path.js";
import { StreamingUntar } from "./untar.js";

/**
 * The file every complete checkpoint archive contains at its root; {@link downloadCheckpoint} refuses archives without it.
 *
 * @example
 * ```ts
 * import { existsSync } from "node:fs";
 * import path from "node:path";
 *
 * const result = await downloadCheckpoint(rest, tinkerPath);
 * existsSync(path.join(result.destination, CHECKPOINT_COMPLETE_MARKER)); // true after a download
 * ```
 */
export const CHECKPOINT_COMPLETE_MARKER = "checkpoint_complete";

/** Download attempts (initial + resumes/retries) unless `maxAttempts` says otherwise. */
export const DEFAULT_DOWNLOAD_MAX_ATTEMPTS = 5;

/** Inactivity limit of the archive transfer and time limit of each REST call, unless `timeoutMs` says otherwise. */
export const DEFAULT_DOWNLOAD_TIMEOUT_MS = 60_000;

/** Largest delay between transfer attempts that made no progress (they start at `retryDelayMs` and double). */
const MAX_RECONNECT_DELAY_MS = 8_000;
/** Hard cap on attempts that did make progress: `maxAttempts` times this. */
const MAX_ATTEMPTS_FACTOR = 20;
/** Progress is reported at most once per this many milliseconds (plus phase changes and the final call). */
const PROGRESS_MS = 100;
/** A signed URL this close to its expiry is refreshed before use. */
const EXPIRY_MARGIN_MS = 5_000;

/** One progress report of {@link downloadCheckpoint}. */
export interface DownloadProgress {
  /**
   * `download` while the archive streams (it is extracted as it arrives), `extract` once the transfer is
   * complete and the last files are being written, `done` once (last) after install.
   */
  phase: "download" | "extract" | "done";
  /** Archive bytes downloaded (download, done) or read by the extractor (extract). */
  bytes: number;
  /** The archive size, or `null` while it is unknown (no `Content-Length`). */
  totalBytes: number | null;
}

/** The part of {@link RestClient} that {@link downloadCheckpoint} uses: where to get a signed archive URL. */
export interface ArchiveUrlProvider {
  /** Returns a signed, expiring URL of the checkpoint's archive. */
  getCheckpointArchiveUrlFromTinkerPath(
    tinkerPath: string,
    options?: { signal?: AbortSignal; timeoutMs?: number; onArchivePending?: (attempt: number) => void },
  ): Promise<{ url: string; expires: string }>;
}

/** Options of {@link downloadCheckpoint}. */
export interface DownloadCheckpointOptions {
  /** Parent directory of the destination (default: the current directory); created when missing. */
  outputDir?: string;
  /** Replace an existing destination, only after the new copy is complete (default `false`). */
  force?: boolean;
  /** Aborts the download; temporary files are removed and {@link APIUserAbortError} is thrown. */
  signal?: AbortSignal;
  /**
   * Progress callback: throttled during download and extraction, and a final `done` call. An exception it
   * throws ends the download (temporary files are removed) and is rethrown unchanged; from the `done` call,
   * after the checkpoint was installed.
   */
  onProgress?: (progress: DownloadProgress) => void;
  /** Time limit of each REST call, and the longest the transfer may stall without a byte (default 60 000 ms). */
  timeoutMs?: number;
  /**
   * Consecutive transfer attempts that may fail without receiving a new byte, counting the first (default 5).
   * An attempt that received data before failing resumes at once and resets the count.
   */
  maxAttempts?: number;
  /** First delay between attempts that made no progress, doubling up to 8 s (default 500 ms). */
  retryDelayMs?: number;
  /** Called while the service is still generating the archive (503), with the attempt number. */
  onArchivePending?: (attempt: number) => void;
  /**
   * HTTP proxy of the archive transfer (`false`: none). Default: the proxy settings of the RestClient `rest`
   * (its `proxy` option, else `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY`), or the environment's for another provider.
   */
  proxy?: string | false;
}

/** What {@link downloadCheckpoint} returns. */
export interface DownloadCheckpointResult {
  /** Absolute path of the installed checkpoint directory. */
  destination: string;
  /** The tinker path that was downloaded. */
  checkpointPath: string;
  /** Size of the downloaded archive in bytes. */
  bytes: number;
}

/**
 * The directory name a checkpoint is installed under: `<run-id>_<kind>_<name>`, e.g.
 * `tinker://sess-0:train:0/weights/0001` → `sess-0_train_0_weights_0001`.
 *
 * Characters that are not safe in a file name on every common platform (`/ \ : * ? " < > |` and control
 * characters) are replaced with `_`, so run ids with `:` give portable names.
 *
 * @throws {InvalidTinkerPathError} when `tinkerPath` is not a valid tinker path.
 * @example
 * ```ts
 * checkpointDirName("tinker://run-1/weights/0001"); // "run-1_weights_0001"
 * ```
 */
export function checkpointDirName(tinkerPath: string): string {
  const p = parseTinkerPath(tinkerPath);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what this replaces
  const safe = (s: string): string => s.replace(/[/\\:*?"<>|\u0000-\u001f\u007f]/g, "_");
  return `${safe(p.trainingRunId)}_${p.checkpointKind}_${safe(p.checkpointName)}`;
}

/**
 * Downloads a checkpoint archive and installs it as `<outputDir>/<run-id>_<kind>_<name>` (see
 * {@link checkpointDirName}).
 *
 * Order of work: the path is validated (nothing is sent for an invalid one); an existing destination without
 * `force` fails before anything is downloaded; the signed URL is fetched from `rest`; the archive streams
 * into `.<dir-name>.tmp-<random>/` next to the destination; an interrupted transfer resumes with
 * `Range: bytes=<have>-` and `If-Range: <the first response's ETag, else Last-Modified>`; every response's
 * validator is checked, and an archive that changed meanwhile (the checkpoint was saved again) is downloaded again
 * from byte 0, once (a second change is an {@link ArchiveChangedError}), so two versions are never mixed
 * (a `200` answer restarts from 0; a `401`/`403`/`410` from the download host gets a
 * fresh signed URL); the byte count is checked against `Content-Length`/`Content-Range`; entries are extracted
 * under strict checks (no absolute paths, no `..`, no links of any kind, no devices or FIFOs; special
 * permission bits dropped); the `checkpoint_complete` marker must exist; then the directory is renamed into
 * place. With `force`, the old copy is moved aside first and removed only after the new one is in place (and
 * restored if that rename fails). The signed URL is fetched with no API key or other credential.
 *
 * @throws {InvalidTinkerPathError} when `tinkerPath` is malformed (nothing is sent).
 * @throws {DestinationExistsError} when the destination exists and `force` is not set (nothing is downloaded).
 * @throws {NotFoundError} when the checkpoint does not exist (expired or deleted); the message names the path.
 * @throws {PermissionDeniedError} when the API key may not read the checkpoint.
 * @throws {UnsafeArchiveError} when an archive entry could land outside the destination, or is a link, device or FIFO.
 * @throws {IncompleteCheckpointError} when the archive lacks the `checkpoint_complete` marker.
 * @throws {ArchiveExtractionError} when the archive is corrupt or cannot be written to disk.
 * @throws {APIConnectionError} when the transfer still fails after `maxAttempts` attempts.
 * @throws {ProxyError} when the HTTP proxy refuses the tunnel (407, 403; a 5xx after `maxAttempts` attempts).
 * @throws {ConfigurationError} when the `proxy` option (or `HTTPS_PROXY` / `HTTP_PROXY`) is not a usable proxy URL.
 * @throws {ArchiveChangedError} when the archive changed during the download, again after one fresh start.
 * @throws {APIUserAbortError} when `signal` aborts.
 * @example
 * ```ts
 * const rest = service.createRestClient();
 * const { destination, bytes } = await downloadCheckpoint(rest, "tinker://run-1/weights/0001", {
 *   outputDir: "./models",
 *   onProgress: (p) => console.log(p.phase, p.bytes, p.totalBytes),
 * });
 * console.log(`installed ${bytes} bytes at ${destination}`);
 * ```
 */
export async function downloadCheckpoint(
  rest: ArchiveUrlProvider,
  tinkerPath: string,
  options: DownloadCheckpointOptions = {},
): Promise<DownloadCheckpointResult> {
  const dirName = checkpointDirName(tinkerPath);
  const outputDir = path.resolve(options.outputDir ?? ".");
  const destination = path.join(outputDir, dirName);
  const force = options.force === true;
  const signal = options.signal;
  const maxAttempts = options.maxAttempts ?? DEFAULT_DOWNLOAD_MAX_ATTEMPTS;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
    throw new InvalidArgumentError(`maxAttempts must be a whole number ≥ 1, got ${String(options.maxAttempts)}.`);
  }
  const subject = `Downloading ${tinkerPath}`;
  const checkAbort = (): void => {
    if (signal?.aborted === true) throw new APIUserAbortError({ subject, cause: signal.reason });
  };
  checkAbort();
  // A RestClient's transport carries the client's proxy settings and request observer: the archive GETs go
  // through its proxy and are reported like its REST calls. Another provider gets the environment's proxy.
  const client = (rest as { transport?: { proxy?: ProxySettings; observer?: RequestObserver } }).transport;
  const proxy = options.proxy !== undefined ? resolveProxySettings(options.proxy) : (client?.proxy ?? envProxySettings());

  if (!force && (await exists(destination))) throw new DestinationExistsError(destination);

  await mkdir(outputDir, { recursive: true });
  const tempDir = path.join(outputDir, `.${dirName}.tmp-${randomBytes(6).toString("hex")}`);
  await mkdir(tempDir);
  const sink = new ExtractSink(path.join(tempDir, "extract"), tinkerPath);
  try {
    const report = makeReporter(options.onProgress);
    await sink.restart();
    const bytes = await transferArchive(rest, tinkerPath, sink, {
      signal,
      subject,
      maxAttempts,
      timeoutMs: options.timeoutMs ?? DEFAULT_DOWNLOAD_TIMEOUT_MS,
      retryDelayMs: options.retryDelayMs ?? 500,
      report,
      proxy,
      observer: client?.observer,
      ...(options.onArchivePending === undefined ? {} : { onArchivePending: options.onArchivePending }),
    });
    checkAbort();
    report({ phase: "extract", bytes, totalBytes: bytes }, true);
    await sink.finish();
    checkAbort();

    const marker = await stat(path.join(sink.dir, CHECKPOINT_COMPLETE_MARKER)).catch(() => undefined);
    if (marker === undefined || !marker.isFile()) throw new IncompleteCheckpointError(tinkerPath, CHECKPOINT_COMPLETE_MARKER);

    await install(sink.dir, destination, path.join(tempDir, "previous"), force);
    report({ phase: "done", bytes, totalBytes: bytes }, true);
    return { destination, checkpointPath: tinkerPath, bytes };
  } catch (err) {
    throw err instanceof CallbackFailure ? err.error : err;
  } finally {
    await sink.abandon();
    await removeQuietly(tempDir);
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}

async function removeQuietly(p: string): Promise<void> {
  await rm(p, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 }).catch(() => undefined);
}

/** Renames the finished extraction into place; with `force`, the old copy is kept aside until that succeeded. */
async function install(extractDir: string, destination: string, asidePath: string, force: boolean): Promise<void> {
  const hadOld = await exists(destination);
  if (hadOld && !force) throw new DestinationExistsError(destination);
  if (hadOld) await rename(destination, asidePath);
  try {
    await rename(extractDir, destination);
  } catch (err) {
    if (hadOld) await rename(asidePath, destination).catch(() => undefined);
    if ((err as NodeJS.ErrnoException).code === "ENOTEMPTY" || (err as NodeJS.ErrnoException).code === "EEXIST") {
      throw new DestinationExistsError(destination);
    }
    throw err;
  }
  // The old copy (if any) is inside the temporary directory and goes with it.
}

type Reporter = (p: DownloadProgress, force?: boolean) => void;

/** An exception thrown by the caller's `onProgress`: it ends the download and is rethrown unchanged. */
class CallbackFailure extends Error {
  readonly error: unknown;
  constructor(error: unknown) {
    super("onProgress threw");
    this.error = error;
  }
}

function makeReporter(onProgress: ((p: DownloadProgress) => void) | undefined): Reporter {
  let lastAt = 0;
  let lastPhase = "";
  return (p, force = false) => {
    if (onProgress === undefined) return;
    const now = Date.now();
    if (!force && p.phase === lastPhase && now - lastAt < PROGRESS_MS) return;
    lastAt = now;
    lastPhase = p.phase;
    try {
      onProgress({ ...p });
    } catch (err) {
      throw new CallbackFailure(err);
    }
  };
}

interface TransferContext {
  signal: AbortSignal | undefined;
  subject: string;
  maxAttempts: number;
  timeoutMs: number;
  retryDelayMs: number;
  report: Reporter;
  onArchivePending?: (attempt: number) => void;
  /** Where the archive is fetched through. */
  proxy: ProxySettings;
  /** The client's request observer (debug lines, hooks), when anything listens. */
  readonly observer: RequestObserver | undefined;
}

/** What one attempt ended with. */
type AttemptOutcome =
  | { kind: "done" }
  | { kind: "retry"; reason: unknown; restart?: boolean; refreshUrl?: boolean; noDelay?: boolean; changed?: boolean };

/** What identifies one version of the archive: its strong ETag, else its Last-Modified date. */
interface Validator {
  etag: string | undefined;
  lastModified: string | undefined;
}

function validatorOf(headers: Readonly<Record<string, string>>): Validator {
  const etag = headers["etag"]?.trim();
  // A weak ETag (W/"...") may not be used with If-Range (RFC 9110 §13.1.5): fall back to Last-Modified.
  return {
    etag: etag === undefined || etag === "" || etag.startsWith("W/") ? undefined : etag,
    lastModified: headers["last-modified"]?.trim() || undefined,
  };
}

/** Whether `seen` names another version than `first` (compared on the validator `first` offers). */
function versionChanged(first: Validator, seen: Validator): boolean {
  if (first.etag !== undefined) return seen.etag !== first.etag;
  if (first.lastModified !== undefined) return seen.lastModified !== first.lastModified;
  return false;
}

/** Per-download state shared by the attempts: the first response's validator and how often the archive changed. */
interface VersionState {
  validator: Validator | undefined;
  changes: number;
}

/**
 * Streams the signed URL into the extractor, resuming with Range after interruptions (the extractor has
 * consumed exactly the bytes received, in order, so a resume simply continues it). Returns the archive size.
 */
async function transferArchive(rest: ArchiveUrlProvider, tinkerPath: string, sink: ExtractSink, ctx: TransferContext): Promise<number> {
  const { signal, subject } = ctx;
  const restOptions = {
    timeoutMs: ctx.timeoutMs,
    ...(signal === undefined ? {} : { signal }),
    ...(ctx.onArchivePending === undefined ? {} : { onArchivePending: ctx.onArchivePending }),
  };
  let link = await rest.getCheckpointArchiveUrlFromTinkerPath(tinkerPath, restOptions);
  let total: number | null = null;
  let failures = 0;
  let lastReason: unknown;
  const version: VersionState = { validator: undefined, changes: 0 };

  for (let attempt = 1; ; attempt++) {
    if (signal?.aborted === true) throw new APIUserAbortError({ subject, cause: signal.reason });
    const expiresAt = Date.parse(link.expires);
    if (Number.isFinite(expiresAt) && expiresAt - EXPIRY_MARGIN_MS <= Date.now() && attempt > 1) {
      link = await rest.getCheckpointArchiveUrlFromTinkerPath(tinkerPath, restOptions);
    }
    const before = sink.bytes;
    const outcome = await attemptTransfer(link.url, sink, total, tinkerPath, ctx, version, attempt, (t) => {
      total = t;
    });
    if (outcome.kind === "done") {
      ctx.report({ phase: "download", bytes: sink.bytes, totalBytes: total }, true);
      return sink.bytes;
    }
    lastReason = outcome.reason;
    const progressed = sink.bytes > before;
    if (outcome.changed === true) {
      // The checkpoint was saved again meanwhile: start over once on the new version; a second change is an error.
      version.changes++;
      if (version.changes > 1) throw new ArchiveChangedError(tinkerPath);
    }
    if (outcome.restart === true) {
      await sink.restart();
      version.validator = undefined; // the fresh start records the validator of the version it gets
    }
    // An attempt that received new bytes resets the count: only attempts that make no progress are bounded.
    failures = progressed ? 1 : failures + 1;
    if (failures >= ctx.maxAttempts || attempt >= ctx.maxAttempts * MAX_ATTEMPTS_FACTOR) {
      if (lastReason instanceof APIError || lastReason instanceof ProxyError) throw lastReason;
      throw new APIConnectionError({
        subject,
        attempts: attempt,
        cause: lastReason,
        message: `${subject} failed after ${attempt} attempts (${sink.bytes} bytes received): ${describe(lastReason)}. Check the network and try again; the download starts from scratch next time.`,
      });
    }
    if (outcome.refreshUrl === true) {
      link = await rest.getCheckpointArchiveUrlFromTinkerPath(tinkerPath, restOptions);
    }
    const delay =
      !progressed && outcome.noDelay !== true
        ? backoffMs(failures - 1, { initialMs: ctx.retryDelayMs, maxMs: MAX_RECONNECT_DELAY_MS, jitter: 0 })
        : 0;
    ctx.observer?.note(`download attempt ${attempt} of ${tinkerPath} ended (${describe(lastReason)}); retrying in ${delay} ms`);
    if (delay > 0) {
      try {
        await abortableSleep(delay, signal);
      } catch {
        throw new APIUserAbortError({ subject, cause: signal?.reason });
      }
    }
  }
}

function describe(reason: unknown): string {
  if (reason instanceof Error) {
    const cause = reason.cause instanceof Error ? `: ${reason.cause.message}` : "";
    return `${reason.message}${cause}`;
  }
  return String(reason);
}

const CONTENT_RANGE = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i;

/**
 * GETs `url`, following redirects as {@link leanGet} does (up to 5). No credentials are ever sent: the only headers
 * are `Range` (when resuming) and `accept-encoding: identity`, so byte counts match.
 */
async function getNoCredentials(
  url: string,
  range: number,
  validator: Validator | undefined,
  signal: AbortSignal,
  observer: RequestObserver | undefined,
  attempt: number,
  proxy: ProxySettings,
): Promise<LeanResponse> {
  const headers: Record<string, string> = { "accept-encoding": "identity" };
  if (range > 0) {
    headers["range"] = `bytes=${range}-`;
    // If-Range: the rest of the same version, or else the whole archive (a 200) — never a mix of two versions.
    const ifRange = validator?.etag ?? validator?.lastModified;
    if (ifRange !== undefined) headers["if-range"] = ifRange;
  }
  if (observer === undefined) return leanGet(url, { headers, signal, proxy });
  const observed = observer.start("GET", url, headers, attempt, "download");
  try {
    const res = await leanGet(url, { headers, signal, proxy });
    observer.end(observed, { status: res.status, headers: res.headers });
    return res;
  } catch (err) {
    observer.end(observed, { error: signal.aborted ? "aborted" : describe(err) });
    throw err;
  }
}

/** One GET of the signed URL, feeding the extractor from `sink.bytes`. Reports the total via `update`. */
async function attemptTransfer(
  url: string,
  sink: ExtractSink,
  total: number | null,
  tinkerPath: string,
  ctx: TransferContext,
  version: VersionState,
  attempt: number,
  update: (total: number | null) => void,
): Promise<AttemptOutcome> {
  const { signal, subject } = ctx;
  const idle = new AbortController();
  let idleTimer: NodeJS.Timeout | undefined;
  const armIdle = (): void => {
    if (idleTimer !== undefined) {
      idleTimer.refresh(); // cheap: called for every chunk
      return;
    }
    if (Number.isFinite(ctx.timeoutMs)) {
      idleTimer = setTimeout(
        () =>
          idle.abort(
            new APITimeoutError({ subject, timeoutMs: ctx.timeoutMs, message: `${subject} stalled: no data for ${ctx.timeoutMs} ms.` }),
          ),
        ctx.timeoutMs,
      );
    }
  };
  const attemptSignal = signal === undefined ? idle.signal : AbortSignal.any([signal, idle.signal]);
  const have = sink.bytes;

  armIdle();
  let res: LeanResponse | undefined;
  try {
    try {
      res = await getNoCredentials(url, have, version.validator, attemptSignal, ctx.observer, attempt, ctx.proxy);
    } catch (err) {
      if (signal?.aborted === true) throw new APIUserAbortError({ subject, cause: signal.reason });
      // A proxy's 502 is retried like a dropped connection; its 407 (or any other TinkerError) is final.
      if (err instanceof TinkerError && !idle.signal.aborted && (!(err instanceof ProxyError) || isFinalProxyError(err))) throw err;
      return { kind: "retry", reason: idle.signal.aborted ? idle.signal.reason : err };
    }

    const status = res.status;
    if (status === 200 || status === 206) {
      // Every response must be the version the first one was; otherwise start over on the new one.
      const seen = validatorOf(res.headers);
      if (have > 0 && version.validator !== undefined && versionChanged(version.validator, seen)) {
        res.close();
        return {
          kind: "retry",
          reason: new TinkerError("the archive changed on the server during the download"),
          restart: true,
          noDelay: true,
          changed: true,
        };
      }
      if (have === 0) version.validator = seen;
    }
    let expected: number | null;
    if (status === 200) {
      expected = contentLength(res.headers);
      update(expected);
      if (have > 0) {
        // The server ignored Range: start over with a fresh extraction.
        res.close();
        return { kind: "retry", reason: new TinkerError("the download host ignored the Range request"), restart: true, noDelay: true };
      }
    } else if (status === 206) {
      const m = CONTENT_RANGE.exec(res.headers["content-range"] ?? "");
      if (m === null || Number(m[1]) !== have) {
        res.close();
        return {
          kind: "retry",
          reason: new TinkerError(
            `unexpected Content-Range ${JSON.stringify(res.headers["content-range"] ?? null)} for a resume at byte ${have}`,
          ),
          restart: true,
          noDelay: true,
        };
      }
      const start = Number(m[1]);
      const end = Number(m[2]);
      update(m[3] === "*" ? null : Number(m[3]));
      total = m[3] === "*" ? null : Number(m[3]);
      expected = end - start + 1;
    } else if (status === 416 && total !== null && have === total) {
      res.close();
      return { kind: "done" };
    } else {
      const body = await readSmallBody(res);
      const error = downloadHttpError(status, res.headers, body, url, tinkerPath);
      if (status === 416) return { kind: "retry", reason: error, restart: true, noDelay: true };
      if (status === 401 || status === 403 || status === 410) return { kind: "retry", reason: error, refreshUrl: true, noDelay: true };
      if (status === 408 || status === 429 || status >= 500) return { kind: "retry", reason: error };
      throw error;
    }
    if (status === 200) total = expected;
    ctx.report({ phase: "download", bytes: have, totalBytes: total }, have === 0);

    // The body goes straight from the socket's reused read buffer into the extractor's write buffers: no
    // allocation per chunk, so memory stays flat whatever the size (see lean-http.ts).
    let received = 0;
    let streamError: unknown;
    try {
      await res.consume((chunk) => {
        received += chunk.length;
        armIdle();
        ctx.report({ phase: "download", bytes: have + received, totalBytes: total });
        return sink.write(chunk);
      });
    } catch (err) {
      streamError = err;
    }
    if (streamError !== undefined) {
      if (signal?.aborted === true) throw new APIUserAbortError({ subject, cause: signal.reason });
      // An error of ours (unsafe entry, corrupt archive, failed disk write) ends the download; a network
      // error is retried, resuming after what the extractor consumed.
      if (streamError instanceof CallbackFailure) throw streamError; // unwrapped once, in downloadCheckpoint
      if (streamError instanceof TinkerError && !idle.signal.aborted) throw streamError;
      return { kind: "retry", reason: idle.signal.aborted ? idle.signal.reason : streamError };
    }
    if (expected !== null && received !== expected) {
      return {
        kind: "retry",
        reason: new TinkerError(`received ${received} bytes, expected ${expected} (Content-Length)`),
        restart: received > expected,
      };
    }
    if (total !== null && sink.bytes !== total) {
      return { kind: "retry", reason: new TinkerError(`have ${sink.bytes} bytes of ${total}`), restart: sink.bytes > total };
    }
    return { kind: "done" };
  } finally {
    clearTimeout(idleTimer);
    res?.close(); // no-op once the body was read; otherwise frees the paused connection
  }
}

function contentLength(headers: Readonly<Record<string, string>>): number | null {
  const v = headers["content-length"];
  if (v === undefined || !/^\d+$/.test(v.trim())) return null;
  const enc = headers["content-encoding"];
  if (enc !== undefined && enc !== "identity") return null;
  return Number(v);
}

async function readSmallBody(res: LeanResponse): Promise<unknown> {
  try {
    const text = await res.text(4096);
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return text === "" ? undefined : text;
    }
  } catch {
    return undefined;
  }
}

/** Maps a failed download-host response to an error; the URL is kept without its signature. */
function downloadHttpError(
  status: number,
  headers: Readonly<Record<string, string>>,
  body: unknown,
  url: string,
  tinkerPath: string,
): APIError {
  const init = { status, headers: { ...headers }, body, method: "GET", url };
  if (status === 404) {
    return new NotFoundError({
      ...init,
      message: `The archive of ${tinkerPath} was not found on the download host (expired or deleted?): GET returned 404. Check that the checkpoint still exists (tinker-ts checkpoint list).`,
    });
  }
  return APIError.fromResponse(init);
}

/**
 * The extraction side of a download: a {@link StreamingUntar} into a temporary directory. It consumes the
 * archive bytes in order as they arrive, so a resumed transfer just keeps writing; {@link restart} starts
 * over in an empty directory (when the host cannot resume).
 */
class ExtractSink {
  readonly dir: string;
  readonly #tinkerPath: string;
  #untar: StreamingUntar | undefined;

  constructor(dir: string, tinkerPath: string) {
    this.dir = dir;
    this.#tinkerPath = tinkerPath;
  }

  /** Archive bytes consumed so far. */
  get bytes(): number {
    return this.#untar?.bytes ?? 0;
  }

  /** Discards what was extracted and starts a fresh extraction at byte 0. */
  async restart(): Promise<void> {
    await this.abandon();
    await rm(this.dir, { recursive: true, force: true });
    await mkdir(this.dir);
    this.#untar = new StreamingUntar(this.dir, this.#tinkerPath);
  }

  /** Feeds bytes to the extractor; a returned promise means "wait, and keep `chunk` unchanged until then". */
  write(chunk: Buffer): void | Promise<void> {
    const untar = this.#untar;
    if (untar === undefined) throw new TinkerError("internal: the extractor is not running");
    return untar.write(chunk);
  }

  /** Ends the archive and waits until every file is written and closed. */
  async finish(): Promise<void> {
    await this.#untar?.finish();
  }

  /** Stops the extractor and closes its files (failure and abort paths). */
  async abandon(): Promise<void> {
    const untar = this.#untar;
    this.#untar = undefined;
    await untar?.abort();
  }
}
