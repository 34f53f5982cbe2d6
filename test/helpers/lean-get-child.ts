/**
 * Child process for test/internal/lean-http.test.ts: GETs argv[2] with leanGet and prints one JSON line
 * `{ status, bytes, sha256 }` (or `{ error }`). Run with NODE_EXTRA_CA_CERTS to trust a test certificate.
 *
 * @example
 * ```sh
 * NODE_EXTRA_CA_CERTS=test/fixtures/tls/cert.pem node --import tsx test/helpers/lean-get-child.ts https://localhost:8443/x
 * ```
 */
import { createHash } from "node:crypto";
import { leanGet } from "../../src/internal/net/lean-http.js";

try {
  const res = await leanGet(process.argv[2] as string);
  const hash = createHash("sha256");
  let bytes = 0;
  await res.consume(async (chunk) => {
    hash.update(chunk);
    bytes += chunk.length;
    // A slow consumer now and then, so TLS reads are paused and resumed.
    if (bytes % 7 === 0) await new Promise((resolve) => setImmediate(resolve));
  });
  process.stdout.write(`${JSON.stringify({ status: res.status, bytes, sha256: hash.digest("hex") })}\n`);
} catch (err) {
  process.stdout.write(`${JSON.stringify({ error: String(err), code: (err as { code?: string }).code })}\n`);
}
