/**
 * Checkpoint archives: signed, expiring download URLs on the local server itself, and the download of a
 * deterministic tar of the checkpoint's files, streamed from a cached file with `Range` support.
 *
 * - `GET …/checkpoints/<kind>/<name>/archive` answers 302 to
 *   `/local/archives/<run>/<kind>/<name>?v=<gen>&expires=<unix s>&sig=<hex>` with `Expires` (or 200
 *   `{url, expires}`), where `sig` is HMAC-SHA256 with a signing key kept in the data directory
 *   (`url-signing-key`, mode 0600) over the run id, kind, name, the checkpoint's version `v` (its
 *   generation, new on every overwrite) and expiry. URLs are valid for `archiveUrlTtlMs` (15 min by
 *   default), also across a restart on the same data directory.
 * - The download needs no API key; a forged, tampered or expired URL answers 403. A URL signed for a
 *   version that was since overwritten answers **410 Gone** ("request a new URL and start over"): the
 *   bytes it named no longer exist, and resuming it would splice two versions.
 * - Validators: a strong `ETag` (the SHA-256 of the archive's bytes, so equal ETags mean equal bytes) and
 *   `Last-Modified` (the checkpoint's save time). `Range: bytes=a-b` is honoured (206; 416 when
 *   unsatisfiable). With `If-Range`, the range is served only when it is exactly the current strong ETag;
 *   a weak tag, another tag or a date (two saves can fall in the same second) gets the whole archive (200).
 * - The tar holds `adapter_config.json`, `adapter_model.safetensors`, `optimizer.safetensors` (training
 *   checkpoints only) and `checkpoint_complete`, with fixed mtimes and no owner data, so it is identical
 *   for identical checkpoints. It is built once into `<dataDir>/archives/` and served with fs streams.
 *
 * @module
 */

import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { join } from "node:path";
import { create as tarCreate } from "tar";
import type { CheckpointRecord, Store } from "./store.js";
import { randomHex, type CheckpointKind } from "./util.js";

/** The mtime stamped on every archive entry (so archives are reproducible). */
const ARCHIVE_MTIME = new Date("2000-01-01T00:00:00Z");

/** Options of {@link ArchiveService}. */
export type ArchiveOptions = {
  /** How long a signed URL stays valid (ms). */
  urlTtlMs: number;
  /** For this long after a checkpoint's archive is first requested, the archive endpoint answers 503. */
  generationDelayMs: number;
  /** Wall clock (epoch ms) used for URL expiry. */
  clock: () => number;
  /** The HMAC key of signed URLs (see {@link loadUrlSigningKey}). */
  secret: Buffer;
};

/**
 * The URL signing key of a data directory: read from `<dataDir>/url-signing-key`, or made (32 random bytes,
 * hex, mode 0600) when missing, so signed URLs stay valid across restarts.
 *
 * @example
 * ```ts
 * const secret = await loadUrlSigningKey("/var/lib/tinker-local"); // the same 32 bytes on every start
 * ```
 */
export async function loadUrlSigningKey(dataDir: string): Promise<Buffer> {
  const file = join(dataDir, "url-signing-key");
  const read = async (): Promise<Buffer | undefined> => {
    const text = (await readFile(file, "utf8").catch(() => "")).trim();
    return /^[0-9a-f]{64}$/.test(text) ? Buffer.from(text, "hex") : undefined;
  };
  const existing = await read();
  if (existing !== undefined) return existing;
  const key = randomBytes(32);
  const temp = `${file}.tmp-${randomHex(6)}`;
  await writeFile(temp, `${key.toString("hex")}\n`, { mode: 0o600 });
  await rename(temp, file);
  return (await read()) ?? key;
}

/** Where a signed URL points. */
export type ArchiveTarget = { runId: string; kind: CheckpointKind; name: string };

/** A byte range to serve. */
export type ByteRange = { start: number; end: number };

/** A built archive: its cached file, size and strong entity tag. */
export type BuiltArchive = { path: string; size: number; etag: string };

function archiveKey(rec: CheckpointRecord): string {
  return `${rec.training_run_id}\n${rec.kind}\n${rec.name}\n${rec.gen}`;
}

/** Builds, caches, signs and serves checkpoint archives. */
export class ArchiveService {
  readonly #store: Store;
  readonly #opts: ArchiveOptions;
  readonly #secret: Buffer;
  readonly #firstRequested = new Map<string, number>();
  readonly #building = new Map<string, Promise<BuiltArchive>>();
  readonly #built = new Map<string, BuiltArchive>();

  /** Creates the service for `store`. */
  constructor(store: Store, opts: ArchiveOptions) {
    this.#store = store;
    this.#opts = opts;
    this.#secret = opts.secret;
  }

  /**
   * Records an archive request; returns false while the archive is "still being generated" (within
   * `generationDelayMs` of the first request for this checkpoint). Starts building the tar.
   */
  requestReady(rec: CheckpointRecord): boolean {
    const key = archiveKey(rec);
    const now = performance.now();
    let first = this.#firstRequested.get(key);
    if (first === undefined) {
      first = now;
      this.#firstRequested.set(key, now);
      if (this.#firstRequested.size > 10_000) this.#firstRequested.delete(this.#firstRequested.keys().next().value as string);
      this.ensureTar(rec).catch(() => undefined);
    }
    return now - first >= this.#opts.generationDelayMs;
  }

  #sign(target: ArchiveTarget, gen: number, expires: number): string {
    return createHmac("sha256", this.#secret).update(`${target.runId}\n${target.kind}\n${target.name}\n${gen}\n${expires}`).digest("hex");
  }

  /** A signed path+query for this version of `rec` and its expiry (epoch ms, whole seconds). */
  signedPath(rec: CheckpointRecord): { path: string; expiresMs: number } {
    const expires = Math.ceil((this.#opts.clock() + this.#opts.urlTtlMs) / 1000);
    const target = { runId: rec.training_run_id, kind: rec.kind, name: rec.name };
    const sig = this.#sign(target, rec.gen, expires);
    const path =
      `/local/archives/${encodeURIComponent(rec.training_run_id)}/${rec.kind}/${encodeURIComponent(rec.name)}` +
      `?v=${rec.gen}&expires=${expires}&sig=${sig}`;
    return { path, expiresMs: expires * 1000 };
  }

  /**
   * Checks a signed URL's signature and expiry; returns the checkpoint version (`gen`) it was signed for,
   * or a reason for 403.
   */
  verify(target: ArchiveTarget, query: URLSearchParams): { gen: number } | string {
    const genRaw = query.get("v");
    const expiresRaw = query.get("expires");
    const sig = query.get("sig");
    if (
      genRaw === null ||
      expiresRaw === null ||
      sig === null ||
      !/^\d{1,16}$/.test(genRaw) ||
      !/^\d{1,15}$/.test(expiresRaw) ||
      !/^[0-9a-f]{64}$/.test(sig)
    ) {
      return "the download URL is not signed; request a new one from the archive endpoint";
    }
    const gen = Number(genRaw);
    const expires = Number(expiresRaw);
    const expected = Buffer.from(this.#sign(target, gen, expires), "hex");
    if (!timingSafeEqual(expected, Buffer.from(sig, "hex"))) {
      return "the download URL's signature is invalid; request a new one from the archive endpoint";
    }
    if (expires * 1000 <= this.#opts.clock()) return "the download URL has expired; request a new one from the archive endpoint";
    return { gen };
  }

  /** Builds (once) the tar of `rec` in the archive cache; returns its path, size and ETag. */
  ensureTar(rec: CheckpointRecord): Promise<BuiltArchive> {
    const key = archiveKey(rec);
    const done = this.#built.get(key);
    if (done) return Promise.resolve(done);
    let building = this.#building.get(key);
    if (!building) {
      building = this.#build(rec).finally(() => this.#building.delete(key));
      this.#building.set(key, building);
    }
    return building;
  }

  async #build(rec: CheckpointRecord): Promise<BuiltArchive> {
    const key = archiveKey(rec);
    // A digest of the key, not the ids themselves: run id + name could exceed a file name's 255 bytes.
    const final = join(this.#store.archivesDir, `${createHash("sha256").update(key).digest("hex").slice(0, 40)}.tar`);
    const tmp = `${final}.tmp-${randomHex(6)}`;
    const hash = createHash("sha256");
    try {
      const pack = tarCreate({ cwd: this.#store.checkpointDir(rec), portable: true, mtime: ARCHIVE_MTIME, noDirRecurse: true }, rec.files);
      const out = createWriteStream(tmp);
      // One pass: the tar stream is hashed as it is written (the ETag is the digest of the archive's bytes).
      await new Promise<void>((resolve, reject) => {
        const fail = (err: unknown): void => {
          out.destroy();
          reject(err);
        };
        pack.on("data", (chunk: Buffer) => hash.update(chunk));
        pack.on("error", fail);
        out.on("error", fail);
        out.on("close", () => resolve());
        pack.pipe(out);
      });
      await rename(tmp, final);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    const result = { path: final, size: (await stat(final)).size, etag: `"${hash.digest("hex").slice(0, 40)}"` };
    // Only cache it if the checkpoint was not removed meanwhile.
    if (this.#store.checkpoint(rec.training_run_id, rec.kind, rec.name)?.gen === rec.gen) this.#built.set(key, result);
    else await rm(final, { force: true });
    return result;
  }

  /** Forgets (and deletes) the cached archive of a removed checkpoint. */
  invalidate(rec: CheckpointRecord): void {
    const key = archiveKey(rec);
    this.#firstRequested.delete(key);
    const built = this.#built.get(key);
    this.#built.delete(key);
    if (built) rm(built.path, { force: true }).catch(() => undefined);
  }

  /**
   * Streams the archive of `rec` (whole or one range). `cutAfterBytes` (fault injection) sends only that
   * many body bytes and then destroys the connection.
   */
  async serve(
    req: IncomingMessage,
    res: ServerResponse,
    rec: CheckpointRecord,
    extraHeaders: Record<string, string>,
    cutAfterBytes: number | undefined,
  ): Promise<void> {
    const { path, size, etag } = await this.ensureTar(rec);
    const ifRange = req.headers["if-range"];
    // If-Range: serve the range only for exactly the current strong ETag; otherwise the whole archive.
    const range = ifRange === undefined || String(ifRange).trim() === etag ? parseRange(req.headers.range, size) : undefined;
    const filename = `${rec.name.replace(/[^A-Za-z0-9._-]/g, "_")}.tar`;
    const common: Record<string, string> = {
      ...extraHeaders,
      "accept-ranges": "bytes",
      "content-type": "application/x-tar",
      "content-disposition": `attachment; filename="${filename}"`,
      etag,
      "last-modified": new Date(rec.created_at).toUTCString(),
      "cache-control": "private, no-store",
    };
    if (range === "unsatisfiable") {
      const body = JSON.stringify({ detail: `requested range not satisfiable (archive is ${size} bytes)` });
      res.writeHead(416, {
        ...extraHeaders,
        "content-range": `bytes */${size}`,
        "content-type": "application/json",
        "content-length": String(Buffer.byteLength(body)),
      });
      res.end(body);
      return;
    }
    const start = range?.start ?? 0;
    const end = range?.end ?? size - 1;
    const length = size === 0 ? 0 : end - start + 1;
    const headers: Record<string, string> = { ...common, "content-length": String(length) };
    if (range) headers["content-range"] = `bytes ${start}-${end}/${size}`;
    res.writeHead(range ? 206 : 200, headers);
    if (req.method === "HEAD" || length === 0) {
      res.end();
      return;
    }
    const limit = cutAfterBytes === undefined ? length : Math.min(cutAfterBytes, length);
    if (cutAfterBytes !== undefined && limit === 0) {
      res.flushHeaders();
      await new Promise<void>((resolve) => res.write("", () => resolve()));
      res.destroy();
      return;
    }
    const stream = createReadStream(path, { start, end: start + limit - 1, highWaterMark: 256 * 1024 });
    await new Promise<void>((resolve) => {
      const finish = (): void => {
        stream.destroy();
        resolve();
      };
      res.on("close", finish);
      stream.on("error", () => {
        res.destroy();
        finish();
      });
      stream.on("data", (chunk) => {
        if (!res.write(chunk)) {
          stream.pause();
          res.once("drain", () => stream.resume());
        }
      });
      stream.on("end", () => {
        if (limit < length) {
          // Injected cut: flush what was written, then drop the connection mid-body.
          res.write("", () => {
            res.destroy();
            finish();
          });
        } else {
          res.end(finish);
        }
      });
    });
  }
}

/**
 * Parses a `Range` header for a body of `size` bytes. Only a single `bytes=` range is honoured; anything
 * else (absent, malformed, several ranges) means "send the whole body" (undefined).
 */
export function parseRange(header: string | undefined, size: number): ByteRange | "unsatisfiable" | undefined {
  if (header === undefined) return undefined;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m) return undefined;
  const [, a, b] = m as unknown as [string, string, string];
  if (a === "" && b === "") return undefined;
  if (a === "") {
    const n = Number(b);
    if (n === 0 || size === 0) return "unsatisfiable";
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  if (b !== "" && Number(b) < start) return undefined;
  if (start >= size) return "unsatisfiable";
  const end = b === "" ? size - 1 : Math.min(Number(b), size - 1);
  return { start, end };
}
