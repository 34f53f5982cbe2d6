/**
 * Child process for test/internal/proxy.test.ts: GETs argv[2] through the proxy argv[3], once with leanGet and once
 * with the REST fetch, and prints one JSON line `{ lean, fetch }`, each `{ status, bytes, sha256 }` or `{ error }`.
 * Run with NODE_EXTRA_CA_CERTS to trust the test certificate.
 *
 * @example
 * ```sh
 * NODE_EXTRA_CA_CERTS=test/fixtures/tls/cert.pem node --import tsx test/helpers/proxy-child.ts https://localhost:8443/x http://127.0.0.1:3128
 * ```
 */
import { createHash } from "node:crypto";
import { leanGet } from "../../src/internal/net/lean-http.js";
import { createNodeHttpFetch } from "../../src/internal/net/node-fetch.js";
import { resolveProxySettings } from "../../src/internal/net/proxy.js";

const [url, proxyUrl] = [process.argv[2] as string, process.argv[3] as string];
const settings = resolveProxySettings(proxyUrl, {});

async function viaLean(): Promise<unknown> {
  try {
    const res = await leanGet(url, { proxy: settings });
    const hash = createHash("sha256");
    let bytes = 0;
    await res.consume(async (chunk) => {
      hash.update(chunk);
      bytes += chunk.length;
      if (bytes % 7 === 0) await new Promise((resolve) => setImmediate(resolve));
    });
    return { status: res.status, bytes, sha256: hash.digest("hex") };
  } catch (err) {
    return { error: String(err) };
  }
}

async function viaFetch(): Promise<unknown> {
  try {
    const res = await createNodeHttpFetch(settings)(new Request(url));
    const body = Buffer.from(await res.arrayBuffer());
    return { status: res.status, bytes: body.length, sha256: createHash("sha256").update(body).digest("hex") };
  } catch (err) {
    return { error: `${String(err)} ${String((err as Error).cause ?? "")}` };
  }
}

process.stdout.write(`${JSON.stringify({ lean: await viaLean(), fetch: await viaFetch() })}\n`);
