/**
 * Peak RSS of a download with and without an HTTP proxy: each case runs in a fresh child process (under tsx) and
 * reports `process.resourceUsage().maxRSS`; the origin, the proxy and the local server run in this process.
 *
 *   npx tsx scripts/measure-proxy-rss.ts [MiB] [filter]    (default 256 MiB, every case; filter: a label substring)
 *
 * Cases: `leanGet` of MiB bytes from an http and an https origin (test certificate, trusted via
 * NODE_EXTRA_CA_CERTS), direct and through test/helpers/connect-proxy.ts; and `downloadCheckpoint` of a synthetic
 * checkpoint of MiB bytes from the local server, direct and through the proxy. Prints one line per case.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const MiB = 1024 * 1024;

if (process.argv[2] === "child") {
  const [, , , kind, url, proxy, extra] = process.argv;
  const proxyOption = proxy === "none" ? false : (proxy as string);
  const base = process.memoryUsage().rss;
  let bytes = 0;
  if (kind === "lean") {
    const { leanGet } = await import("../src/internal/net/lean-http.js");
    const { resolveProxySettings } = await import("../src/internal/net/proxy.js");
    const res = await leanGet(url as string, { proxy: resolveProxySettings(proxyOption, {}) });
    await res.consume((chunk) => {
      bytes += chunk.length;
    });
  } else {
    const { RestClient, downloadCheckpoint } = await import("../src/index.js");
    const [apiKey, outputDir] = (extra as string).split("|");
    const rest = RestClient.fromEnv({ baseUrl: url as string, apiKey: apiKey as string, proxy: proxyOption });
    const result = await downloadCheckpoint(rest, kind as string, { outputDir: outputDir as string });
    bytes = result.bytes;
  }
  const peak = process.resourceUsage().maxRSS * 1024;
  process.stdout.write(`${JSON.stringify({ bytes, baseMB: +(base / 1e6).toFixed(1), peakMB: +(peak / 1e6).toFixed(1) })}\n`);
  process.exit(0);
}

const size = Number(process.argv[2] ?? 256) * MiB;
const { startConnectProxy } = await import("../test/helpers/connect-proxy.js");
const fixtures = new URL("../test/fixtures/tls/", import.meta.url);
const block = Buffer.alloc(MiB, 7);
const serve = (_req: IncomingMessage, res: ServerResponse): void => {
  res.writeHead(200, { "content-length": size });
  let sent = 0;
  const pump = (): void => {
    while (sent < size) {
      const n = Math.min(MiB, size - sent);
      sent += n;
      if (!res.write(n === MiB ? block : block.subarray(0, n))) {
        res.once("drain", pump);
        return;
      }
    }
    res.end();
  };
  pump();
};
const http = createServer(serve);
const https = createHttpsServer(
  { key: readFileSync(new URL("key.pem", fixtures)), cert: readFileSync(new URL("cert.pem", fixtures)) },
  serve,
);
await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
await new Promise<void>((r) => https.listen(0, "127.0.0.1", r));
const proxy = await startConnectProxy();
const { startLocalServer } = await import("../src/server/index.js");
const server = await startLocalServer();
const out = await mkdtemp(path.join(tmpdir(), "proxy-rss-"));
const { seedSynthetic } = await import("../test/helpers/seed-checkpoints.js");
const self = fileURLToPath(import.meta.url);
const env = { ...process.env, NODE_EXTRA_CA_CERTS: fileURLToPath(new URL("cert.pem", fixtures)) };

const only = process.argv[3];

async function run(label: string, args: string[]): Promise<void> {
  if (only !== undefined && !label.includes(only)) return;
  const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", self, "child", ...args], { env, maxBuffer: 1e6 });
  console.log(`${label.padEnd(44)} ${stdout.trim()}`);
}

try {
  const httpUrl = `http://127.0.0.1:${(http.address() as AddressInfo).port}/blob`;
  const httpsUrl = `https://localhost:${(https.address() as AddressInfo).port}/blob`;
  for (const [label, url] of [
    ["http", httpUrl],
    ["https", httpsUrl],
  ] as const) {
    await run(`leanGet ${label} direct`, ["lean", url, "none"]);
    await run(`leanGet ${label} via proxy`, ["lean", url, proxy.url]);
  }
  for (const via of ["none", proxy.url]) {
    if (only !== undefined && !"downloadCheckpoint".includes(only)) break;
    const ckpt = await seedSynthetic(server.baseUrl, server.apiKey, {
      name: `rss-${via === "none" ? "direct" : "proxy"}`,
      sizeBytes: size,
    });
    await run(`downloadCheckpoint ${via === "none" ? "direct" : "via proxy"}`, [ckpt, server.baseUrl, via, `${server.apiKey}|${out}`]);
  }
  console.log(`proxy tunnels: ${proxy.tunnels}, bytes through it: ${(proxy.bytesDown / 1e6).toFixed(0)} MB`);
} finally {
  await proxy.close();
  await server.close();
  http.close();
  https.close();
  await rm(out, { recursive: true, force: true });
}
