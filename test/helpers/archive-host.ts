/**
 * A crafted pair of real HTTP servers for download tests: an "API" that answers the checkpoint archive
 * endpoint with a 302 to a signed URL, and a separate "download host" (another origin) that serves tar
 * bytes with Range support and can misbehave on demand (cut connections, expire URLs, drop Content-Length,
 * ignore Range). Both record every request with its headers.
 *
 * @example
 * ```ts
 * const host = await startArchiveHost();
 * host.setArchive("tinker://run-1/weights/a", validCheckpointTar());
 * host.plan.cuts.push(1000); // the first download is cut after 1000 bytes
 * const rest = new RestClient(new Transport({ baseUrl: host.apiUrl, apiKey: "tml-test" }));
 * ```
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** A request one of the servers saw. */
export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

/** How the download host misbehaves; mutate between or during tests. */
export interface DownloadPlan {
  /** Each download request takes the first value: it sends the headers, then only that many bytes, then closes the connection. */
  cuts: number[];
  /** Send the body chunked, with no Content-Length. */
  noContentLength: boolean;
  /** Answer 200 with the whole archive even to a Range request. */
  ignoreRange: boolean;
  /** Answer every download with this status (e.g. 500), while set. */
  downloadStatus: number | undefined;
  /** Statuses the archive endpoint answers first (one per request) before the 302. */
  archiveStatuses: number[];
  /** Send the body in chunks of this size with a pause, so a test can act mid-download. */
  slowChunkBytes: number | undefined;
  /** Send the headers and this many bytes, then nothing more (the connection stays open). */
  stallAfterBytes: number | undefined;
  /** Validators sent with the archive: a strong `ETag`, `Last-Modified`, both (default) or none. */
  validators: "both" | "etag" | "last-modified" | "none";
  /** Serve a Range request even when its `If-Range` no longer matches (a host without If-Range support). */
  ignoreIfRange: boolean;
  /** After each cut, the archive is overwritten with the next of these (a checkpoint saved again meanwhile). */
  replaceAfterCut: Buffer[];
}

/** The running pair of servers. */
export interface ArchiveHost {
  /** Base URL of the API server. */
  apiUrl: string;
  /** Base URL of the download host (a different origin). */
  downloadUrl: string;
  /** Requests the API server saw. */
  apiRequests: SeenRequest[];
  /** Requests the download host saw. */
  downloadRequests: SeenRequest[];
  /** The misbehaviour plan. */
  plan: DownloadPlan;
  /** Serves `tar` as the archive of `tinkerPath`. */
  setArchive(tinkerPath: string, tar: Buffer): void;
  /** Makes every signed URL issued so far answer 403 (expired). */
  expireIssuedUrls(): void;
  /** Stops both servers. */
  close(): Promise<void>;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

/** Starts the API server and the download host. */
export async function startArchiveHost(): Promise<ArchiveHost> {
  const archives = new Map<string, Buffer>();
  const versions = new Map<string, number>(); // a version number per archive, for Last-Modified
  let versionSeq = 0;
  const setArchive = (key: string, tar: Buffer): void => {
    archives.set(key, tar);
    versions.set(key, ++versionSeq);
  };
  const tokens = new Map<string, { key: string; expired: boolean }>();
  const apiRequests: SeenRequest[] = [];
  const downloadRequests: SeenRequest[] = [];
  const plan: DownloadPlan = {
    cuts: [],
    noContentLength: false,
    ignoreRange: false,
    downloadStatus: undefined,
    archiveStatuses: [],
    slowChunkBytes: undefined,
    stallAfterBytes: undefined,
    validators: "both",
    ignoreIfRange: false,
    replaceAfterCut: [],
  };
  let tokenSeq = 0;
  let downloadUrl = "";

  const api = createServer((req, res) => {
    apiRequests.push({ method: req.method ?? "GET", url: req.url ?? "/", headers: req.headers });
    req.resume();
    const m = /^\/api\/v1\/training_runs\/([^/]+)\/checkpoints\/(weights|sampler_weights)\/([^/?]+)\/archive$/.exec(
      (req.url ?? "").split("?")[0] ?? "",
    );
    if (m === null) return json(res, 404, { detail: "no such route" });
    const status = plan.archiveStatuses.shift();
    if (status !== undefined) {
      res.setHeader("retry-after", "0");
      return json(res, status, { detail: status === 503 ? "archive still being generated" : "scripted failure" });
    }
    const key = `tinker://${decodeURIComponent(m[1] ?? "")}/${m[2]}/${decodeURIComponent(m[3] ?? "")}`;
    if (!archives.has(key)) return json(res, 404, { detail: `checkpoint ${key} not found` });
    const token = `t${++tokenSeq}`;
    tokens.set(token, { key, expired: false });
    res.writeHead(302, {
      location: `${downloadUrl}/dl/${token}?sig=secret-signature`,
      expires: new Date(Date.now() + 15 * 60_000).toUTCString(),
    });
    res.end();
  });

  const download = createServer((req, res) => {
    downloadRequests.push({ method: req.method ?? "GET", url: req.url ?? "/", headers: req.headers });
    req.resume();
    if (plan.downloadStatus !== undefined) return json(res, plan.downloadStatus, { detail: "scripted download failure" });
    const token = /^\/dl\/([^/?]+)/.exec(req.url ?? "")?.[1] ?? "";
    const entry = tokens.get(token);
    if (entry === undefined) return json(res, 404, { detail: "unknown URL" });
    if (entry.expired) return json(res, 403, { detail: "signature expired" });
    const data = archives.get(entry.key);
    if (data === undefined) return json(res, 404, { detail: "archive gone" });

    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(String(req.headers.range ?? ""));
    const headers: Record<string, string> = { "content-type": "application/x-tar", "accept-ranges": "bytes" };
    const etag = `"${createHash("sha256").update(data).digest("hex").slice(0, 20)}"`;
    const lastModified = new Date(Date.UTC(2026, 0, 1) + (versions.get(entry.key) ?? 0) * 60_000).toUTCString();
    if (plan.validators === "both" || plan.validators === "etag") headers["etag"] = etag;
    if (plan.validators === "both" || plan.validators === "last-modified") headers["last-modified"] = lastModified;
    const ifRange = req.headers["if-range"];
    // RFC 9110 If-Range: serve the range only if the validator still matches; otherwise the whole, new archive.
    const rangeStillValid =
      ifRange === undefined || plan.ignoreIfRange || ifRange === headers["etag"] || ifRange === headers["last-modified"];
    let status = 200;
    if (range !== null && !plan.ignoreRange && rangeStillValid) {
      start = Number(range[1]);
      if (start >= data.length) {
        res.writeHead(416, { "content-range": `bytes */${data.length}` });
        return res.end();
      }
      status = 206;
      headers["content-range"] = `bytes ${start}-${data.length - 1}/${data.length}`;
    }
    const body = data.subarray(start);
    if (!plan.noContentLength) headers["content-length"] = String(body.length);
    res.writeHead(status, headers);
    if (plan.stallAfterBytes !== undefined) {
      res.write(body.subarray(0, plan.stallAfterBytes));
      return;
    }
    const cut = plan.cuts.shift();
    if (cut !== undefined) {
      // Trickle exactly `cut` bytes, let the client read them, then close the connection (FIN): the client
      // sees a body shorter than Content-Length.
      let off = 0;
      const trickle = (): void => {
        if (res.destroyed) return;
        if (off >= cut) {
          const next = plan.replaceAfterCut.shift();
          if (next !== undefined) setArchive(entry.key, next);
          setTimeout(() => res.socket?.end(), 50);
          return;
        }
        const n = Math.min(16_384, cut - off);
        res.write(body.subarray(off, off + n));
        off += n;
        setTimeout(trickle, 2);
      };
      trickle();
      return;
    }
    if (plan.slowChunkBytes !== undefined) {
      const size = plan.slowChunkBytes;
      let off = 0;
      const tick = (): void => {
        if (res.destroyed) return;
        if (off >= body.length) {
          res.end();
          return;
        }
        res.write(body.subarray(off, off + size));
        off += size;
        setTimeout(tick, 5);
      };
      tick();
      return;
    }
    res.end(body);
  });

  const apiUrl = await listen(api);
  downloadUrl = await listen(download);
  return {
    apiUrl,
    downloadUrl,
    apiRequests,
    downloadRequests,
    plan,
    setArchive,
    expireIssuedUrls: () => {
      for (const t of tokens.values()) t.expired = true;
    },
    close: async () => {
      for (const s of [api, download]) {
        await new Promise<void>((resolve) => {
          s.close(() => resolve());
          s.closeAllConnections();
        });
      }
    },
  };
}
