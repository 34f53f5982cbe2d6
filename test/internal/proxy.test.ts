/**
 * Proxy routing (src/internal/net/proxy.ts): which proxy a URL uses under HTTPS_PROXY / HTTP_PROXY / NO_PROXY and
 * the `proxy` option, and the two HTTP clients through a real CONNECT proxy on loopback (test/helpers/connect-proxy.ts):
 * tunnels, Proxy-Authorization to the proxy only, refusals as ProxyError, redirects re-decided per host, HTTPS
 * through the tunnel (child process trusting the test certificate). Environments are passed explicitly, never set
 * on process.env.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { APIConnectionError, BadRequestError, ConfigurationError, ProxyError } from "../../src/core/errors.js";
import { RestClient } from "../../src/rest-client.js";
import { shellMessage } from "../../src/cli/main.js";
import { downloadCheckpoint } from "../../src/download/download.js";
import { leanGet } from "../../src/internal/net/lean-http.js";
import { createNodeHttpFetch } from "../../src/internal/net/node-fetch.js";
import { parseProxyUrl, proxyFor, resolveProxySettings, type ProxyEnv } from "../../src/internal/net/proxy.js";
import { createRetryingFetch } from "../../src/internal/retry.js";
import { type ConnectProxy, startConnectProxy } from "../helpers/connect-proxy.js";

const P = "http://proxy.corp:3128";
const route = (url: string, env: ProxyEnv, option?: string | false): string | undefined =>
  proxyFor(url, resolveProxySettings(option, env))?.display;

describe("which URLs use which proxy", () => {
  test("https:// uses HTTPS_PROXY, http:// uses HTTP_PROXY; lower-case wins; empty is unset; no cross-scheme fallback", () => {
    assert.equal(route("https://a.example/x", { HTTPS_PROXY: P }), "proxy.corp:3128");
    assert.equal(route("http://a.example/x", { HTTPS_PROXY: P }), undefined, "HTTPS_PROXY is not used for http://");
    assert.equal(route("https://a.example/x", { HTTP_PROXY: P }), undefined, "HTTP_PROXY is not used for https://");
    assert.equal(route("http://a.example/x", { HTTP_PROXY: P }), "proxy.corp:3128");
    assert.equal(route("https://a.example/", { https_proxy: "http://low:1", HTTPS_PROXY: "http://up:2" }), "low:1");
    assert.equal(route("https://a.example/", { https_proxy: "  ", HTTPS_PROXY: "http://up:2" }), "up:2");
    assert.equal(route("https://a.example/", { https_proxy: "proxy.corp:8080" }), "proxy.corp:8080", "scheme-less means http://");
    assert.equal(route("https://a.example/", { https_proxy: "http://proxy.corp" }), "proxy.corp:80", "port defaults to 80");
    assert.equal(route("https://a.example/", {}), undefined);
  });

  test("NO_PROXY: names match themselves and every name under them, with or without a leading dot or *.", () => {
    const env = { HTTPS_PROXY: P, NO_PROXY: "example.com, .corp.net,*.internal  Intranet.Local" };
    assert.equal(route("https://example.com/", env), undefined);
    assert.equal(route("https://api.example.com/", env), undefined);
    assert.equal(route("https://a.b.example.com./", env), undefined, "trailing dot");
    assert.equal(route("https://badexample.com/", env), "proxy.corp:3128", "suffix only at a dot");
    assert.equal(route("https://corp.net/", env), undefined);
    assert.equal(route("https://git.corp.net/", env), undefined);
    assert.equal(route("https://x.internal/", env), undefined);
    assert.equal(route("https://intranet.local/", env), undefined, "case-insensitive");
    assert.equal(route("https://example.org/", env), "proxy.corp:3128");
    assert.equal(
      route("https://api.example.com/", { HTTPS_PROXY: P, no_proxy: "other", NO_PROXY: "example.com" }),
      "proxy.corp:3128",
      "lower-case wins",
    );
  });

  test("NO_PROXY: * matches all; :port only that port (default ports count); IPs, [IPv6] and CIDR blocks", () => {
    assert.equal(route("https://a.example/", { HTTPS_PROXY: P, NO_PROXY: "*" }), undefined);
    const env = {
      HTTPS_PROXY: P,
      HTTP_PROXY: P,
      NO_PROXY: "a.example:8443, b.example:443, 10.0.0.0/8, 192.168.1.7, [fd00::1]:8000, fd00::/8",
    };
    assert.equal(route("https://a.example:8443/", env), undefined);
    assert.equal(route("https://a.example/", env), "proxy.corp:3128", "port 443 is not 8443");
    assert.equal(route("https://b.example/", env), undefined, "the default port matches :443");
    assert.equal(route("https://10.20.30.40/", env), undefined);
    assert.equal(route("https://11.0.0.1/", env), "proxy.corp:3128");
    assert.equal(route("http://192.168.1.7:9000/", env), undefined);
    assert.equal(route("http://192.168.1.70/", env), "proxy.corp:3128", "an IP is not a suffix");
    assert.equal(route("http://[fd00::1]:8000/", { HTTP_PROXY: P, NO_PROXY: "[fd00::1]:8000" }), undefined);
    assert.equal(route("http://[fd00::1]:8001/", { HTTP_PROXY: P, NO_PROXY: "[fd00::1]:8000" }), "proxy.corp:3128");
    assert.equal(route("http://[fd12::5]/", env), undefined);
  });

  test("loopback never goes to a proxy from the environment (as Go's ProxyFromEnvironment); the proxy option still applies", () => {
    const env = { HTTPS_PROXY: P, HTTP_PROXY: P };
    for (const url of [
      "http://127.0.0.1:8000/",
      "http://127.5.6.7/",
      "https://localhost:8443/",
      "http://LocalHost/",
      "http://tinker.localhost/",
      "http://[::1]:8000/",
      "http://[::ffff:127.0.0.1]/",
    ]) {
      assert.equal(route(url, env), undefined, url);
    }
    for (const url of ["http://128.0.0.1/", "http://localhost.example/", "http://[::2]/", "http://notlocalhost/"]) {
      assert.equal(route(url, env), "proxy.corp:3128", url);
    }
    assert.equal(route("http://127.0.0.1:8000/", env, "http://opt:1"), "opt:1", "the explicit option routes loopback too");
    assert.equal(route("http://127.0.0.1:8000/", { ...env, NO_PROXY: "127.0.0.1" }, "http://opt:1"), undefined, "NO_PROXY still applies");
  });

  test("the proxy option replaces the variables (NO_PROXY still applies); false turns proxies off", () => {
    const env = { HTTPS_PROXY: P, HTTP_PROXY: P, NO_PROXY: "skip.example" };
    assert.equal(route("https://a.example/", env, "http://opt:1"), "opt:1");
    assert.equal(route("http://a.example/", env, "http://opt:1"), "opt:1");
    assert.equal(route("https://skip.example/", env, "http://opt:1"), undefined);
    assert.equal(route("https://a.example/", env, false), undefined);
    assert.equal(route("http://a.example/", env, false), undefined);
  });

  test("credentials become Basic Proxy-Authorization (percent-decoded) and are kept for redaction", () => {
    const p = parseProxyUrl("http://me%40corp:p%3Ass@proxy.corp:3128", "HTTPS_PROXY");
    assert.equal(p.display, "proxy.corp:3128");
    assert.equal(p.authorization, `Basic ${Buffer.from("me@corp:p:ss").toString("base64")}`);
    const settings = resolveProxySettings(undefined, { HTTPS_PROXY: "http://me:hunter22@proxy.corp:3128" });
    assert.ok(settings.secrets.includes("hunter22"));
    assert.ok(settings.secrets.includes(Buffer.from("me:hunter22").toString("base64")));
  });

  test("bad proxy URLs are ConfigurationErrors that name the variable and never quote the URL", () => {
    const cases: [ProxyEnv | string, RegExp][] = [
      [{ HTTPS_PROXY: "http://me:hunter22@[bad" }, /HTTPS_PROXY .*not a valid proxy URL/],
      [{ HTTP_PROXY: "https://me:hunter22@proxy.corp" }, /HTTP_PROXY .*https:\/\/ proxy URL .*not support/],
      [{ HTTPS_PROXY: "socks5://me:hunter22@proxy.corp:1080" }, /socks5:\/\/, which tinker-ts does not support/],
      ["ftp://me:hunter22@x", /The proxy option uses ftp/],
      ["", /proxy option must be a proxy URL/],
    ];
    for (const [input, message] of cases) {
      assert.throws(
        () => (typeof input === "string" ? resolveProxySettings(input, {}) : resolveProxySettings(undefined, input)),
        (err: unknown) => err instanceof ConfigurationError && message.test(err.message) && !err.message.includes("hunter22"),
        JSON.stringify(input),
      );
    }
  });
});

/** A plain origin that records request headers and answers with `body` (or a redirect). */
async function recordingOrigin(answer?: (url: string) => { status: number; headers?: Record<string, string>; body?: Buffer }) {
  const seen: { url: string; headers: IncomingHttpHeaders }[] = [];
  const server: Server = createServer((req, res) => {
    seen.push({ url: req.url ?? "", headers: req.headers });
    const a = answer?.(req.url ?? "") ?? { status: 200, body: Buffer.from("hello") };
    res.writeHead(a.status, { "content-length": String(a.body?.length ?? 0), ...a.headers });
    res.end(a.body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

describe("the HTTP clients through a CONNECT proxy", () => {
  const closers: (() => Promise<void>)[] = [];
  after(async () => {
    for (const c of closers) await c();
  });
  const proxyFor_ = async (options?: Parameters<typeof startConnectProxy>[0]): Promise<ConnectProxy> => {
    const p = await startConnectProxy(options);
    closers.push(p.close);
    return p;
  };
  const origin = async (answer?: Parameters<typeof recordingOrigin>[0]) => {
    const o = await recordingOrigin(answer);
    closers.push(o.close);
    return o;
  };

  test("REST fetch: tunnelled, keep-alive reuses the tunnel, credentials to the proxy only", async () => {
    const proxy = await proxyFor_({ credentials: "me:hunter22" });
    const o = await origin();
    const fetchVia = createNodeHttpFetch(resolveProxySettings(proxy.urlWith("me:hunter22"), {}));
    for (let i = 0; i < 3; i++) {
      const res = await fetchVia(new Request(`${o.url}/x${i}`, { headers: { "x-api-key": "tml-abc" } }));
      assert.equal(await res.text(), "hello");
    }
    assert.equal(proxy.tunnels, 1, "one tunnel for three requests (keep-alive)");
    assert.equal(proxy.connects[0]?.target, `127.0.0.1:${o.port}`);
    assert.equal(proxy.connects[0]?.headers["proxy-authorization"], `Basic ${Buffer.from("me:hunter22").toString("base64")}`);
    assert.equal(o.seen.length, 3);
    for (const r of o.seen) {
      assert.equal(r.headers["proxy-authorization"], undefined, "the origin never sees the proxy's credentials");
      assert.equal(r.headers["x-api-key"], "tml-abc", "the origin's own headers arrive through the tunnel");
    }
    assert.deepEqual(proxy.plainRequests, []);
  });

  test("NO_PROXY and proxy: false connect directly", async () => {
    const proxy = await proxyFor_();
    const o = await origin();
    const env = { HTTP_PROXY: proxy.url, NO_PROXY: `127.0.0.1:${o.port}` };
    await (await createNodeHttpFetch(resolveProxySettings(undefined, env))(new Request(`${o.url}/a`))).text();
    await (await createNodeHttpFetch(resolveProxySettings(false, { HTTP_PROXY: proxy.url }))(new Request(`${o.url}/b`))).text();
    const r = await leanGet(`${o.url}/c`, { proxy: resolveProxySettings(undefined, env) });
    await r.text();
    assert.equal(o.seen.length, 3);
    assert.equal(proxy.connects.length, 0);
  });

  test("407 is a ProxyError at once (not retried), naming the proxy and never the password", async () => {
    const proxy = await proxyFor_({ credentials: "me:right-password" });
    const o = await origin();
    const retrying = createRetryingFetch({
      fetch: createNodeHttpFetch(resolveProxySettings(proxy.urlWith("me:hunter22"), {})),
      maxRetries: 3,
      sleep: async () => undefined,
    });
    const err = await retrying(new Request(`${o.url}/x`)).catch((e: unknown) => e);
    assert.ok(err instanceof ProxyError, String(err));
    assert.ok(err instanceof APIConnectionError, "a kind of connection error");
    assert.equal(err.status, 407);
    assert.equal(err.proxy, `127.0.0.1:${proxy.port}`);
    assert.match(err.message, new RegExp(`The proxy 127\\.0\\.0\\.1:${proxy.port} refused .*407.*rejected the credentials`));
    assert.ok(!err.message.includes("hunter22") && !String(err.stack).includes("hunter22"));
    assert.equal(proxy.connects.length, 1, "not retried");
    assert.match(shellMessage(err, {}), /in HTTPS_PROXY \/ HTTP_PROXY\.$/);
    // Without credentials: says to add them. leanGet rejects the same way.
    const bare = await leanGet(`${o.url}/x`, { proxy: resolveProxySettings(proxy.url, {}) }).catch((e: unknown) => e);
    assert.ok(
      bare instanceof ProxyError && bare.status === 407 && /requires credentials: put them in the proxy URL/.test(bare.message),
      String(bare),
    );
    assert.equal(o.seen.length, 0);
  });

  test("403 says to allow the destination or use NO_PROXY; 502 is retried, then thrown as a ProxyError", async () => {
    const forbidding = await proxyFor_({ refuseWith: 403 });
    const o = await origin();
    const e403 = await leanGet(`${o.url}/x`, { proxy: resolveProxySettings(forbidding.url, {}) }).catch((e: unknown) => e);
    assert.ok(e403 instanceof ProxyError && e403.status === 403, String(e403));
    assert.match(e403.message, /add 127\.0\.0\.1 to NO_PROXY/);
    const failing = await proxyFor_({ refuseWith: 502 });
    const retrying = createRetryingFetch({
      fetch: createNodeHttpFetch(resolveProxySettings(failing.url, {})),
      maxRetries: 2,
      sleep: async () => undefined,
    });
    const e502 = await retrying(new Request(`${o.url}/x`)).catch((e: unknown) => e);
    assert.ok(e502 instanceof ProxyError && e502.status === 502, String(e502));
    assert.equal(failing.connects.length, 3, "retried like a connection error");
    assert.match(e502.message, /could not reach 127\.0\.0\.1:\d+/);
  });

  test("downloadCheckpoint: a proxy's 502 is retried up to maxAttempts, its 407 is final; both throw the ProxyError", async () => {
    const o = await origin();
    const provider = { getCheckpointArchiveUrlFromTinkerPath: async () => ({ url: `${o.url}/a.tar`, expires: "2099-01-01T00:00:00Z" }) };
    const out = await mkdtemp(path.join(tmpdir(), "proxy-dl-"));
    closers.push(() => rm(out, { recursive: true, force: true }));
    const failing = await proxyFor_({ refuseWith: 502 });
    const e502 = await downloadCheckpoint(provider, "tinker://run-1/weights/a", {
      outputDir: out,
      proxy: failing.url,
      maxAttempts: 2,
      retryDelayMs: 1,
    }).catch((e: unknown) => e);
    assert.ok(e502 instanceof ProxyError && e502.status === 502, String(e502));
    assert.equal(failing.connects.length, 2);
    const locked = await proxyFor_({ credentials: "me:right" });
    const e407 = await downloadCheckpoint(provider, "tinker://run-1/weights/a", {
      outputDir: out,
      proxy: locked.urlWith("me:hunter22"),
      retryDelayMs: 1,
    }).catch((e: unknown) => e);
    assert.ok(e407 instanceof ProxyError && e407.status === 407, String(e407));
    assert.equal(locked.connects.length, 1);
    assert.ok(!e407.message.includes("hunter22"));
    assert.equal(o.seen.length, 0);
  });

  test("a proxy that cannot be reached is a retryable connection error that names the proxy", async () => {
    const gone = await proxyFor_();
    await gone.close();
    const o = await origin();
    const retrying = createRetryingFetch({
      fetch: createNodeHttpFetch(resolveProxySettings(gone.url, {})),
      maxRetries: 1,
      sleep: async () => undefined,
    });
    const err = await retrying(new Request(`${o.url}/x`)).catch((e: unknown) => e);
    assert.ok(err instanceof APIConnectionError && !(err instanceof ProxyError), String(err));
    assert.match(err.message, new RegExp(`after 2 attempts: .*could not connect to the proxy 127\\.0\\.0\\.1:${gone.port}.*ECONNREFUSED`));
    assert.match(err.message, /Check that the proxy 127\.0\.0\.1:\d+ is running and reachable .*NO_PROXY/);
    assert.doesNotMatch(shellMessage(err, {}), /proxy option/, "the CLI speaks of variables, not SDK options");
    const lean = await leanGet(`${o.url}/x`, { proxy: resolveProxySettings(gone.url, {}) }).catch((e: unknown) => e);
    assert.equal((lean as { code?: string }).code, "ECONNREFUSED");
    assert.match(String(lean), /could not connect to the proxy/);
  });

  test("the proxy password is redacted like the API key, e.g. from a server's error echoing it", async () => {
    const proxy = await proxyFor_({ credentials: "me:hunter22" });
    const o = await origin(() => ({
      status: 400,
      headers: { "content-type": "application/json" },
      body: Buffer.from('{"detail":"bad value hunter22"}'),
    }));
    const rest = RestClient.fromEnv(
      { maxRetries: 0 },
      // origin.test: the proxy tunnels it to the loopback origin (loopback itself would go direct).
      { TINKER_BASE_URL: `http://origin.test:${o.port}`, TINKER_API_KEY: "tml-abc", HTTP_PROXY: proxy.urlWith("me:hunter22") },
    );
    const err = await rest.listTrainingRuns().catch((e: unknown) => e);
    assert.ok(err instanceof BadRequestError, String(err));
    assert.equal(proxy.tunnels, 1);
    assert.match(err.message, /bad value \[REDACTED\]/);
    assert.ok(!JSON.stringify({ m: err.message, b: err.body }).includes("hunter22"));
  });

  test("downloads (leanGet): tunnelled, bytes intact through pauses, no credentials to the host", async () => {
    const proxy = await proxyFor_({ credentials: "me:hunter22" });
    const payload = randomBytes(3_000_000);
    const o = await origin(() => ({ status: 200, body: payload }));
    const res = await leanGet(`${o.url}/archive.tar`, { proxy: resolveProxySettings(proxy.urlWith("me:hunter22"), {}) });
    const hash = createHash("sha256");
    let bytes = 0;
    await res.consume(async (chunk) => {
      hash.update(chunk);
      bytes += chunk.length;
      if (bytes % 5 === 0) await new Promise((resolve) => setImmediate(resolve));
    });
    assert.equal(bytes, payload.length);
    assert.equal(hash.digest("hex"), sha(payload));
    assert.equal(proxy.tunnels, 1);
    assert.ok(proxy.bytesDown > payload.length, "the body came through the proxy");
    assert.equal(o.seen[0]?.headers["proxy-authorization"], undefined);
  });

  test("a redirect to another host is routed again: direct for NO_PROXY, tunnelled otherwise; the API key stays behind", async () => {
    const proxy = await proxyFor_();
    const b = await origin();
    // A is reached as 127.0.0.1 (loopback and NO_PROXY: direct), B as b.test (proxied; the proxy tunnels it to loopback).
    const a = await origin(() => ({ status: 302, headers: { location: `http://b.test:${b.port}/there` } }));
    const settings = resolveProxySettings(undefined, { HTTP_PROXY: proxy.url, NO_PROXY: "127.0.0.1" });
    const retrying = createRetryingFetch({ fetch: createNodeHttpFetch(settings) });
    const res = await retrying(new Request(`${a.url}/here`, { headers: { "x-api-key": "tml-abc" } }));
    assert.equal(await res.text(), "hello");
    assert.deepEqual(
      proxy.connects.map((c) => c.target),
      [`b.test:${b.port}`],
    );
    assert.equal(a.seen[0]?.headers["x-api-key"], "tml-abc");
    assert.equal(b.seen[0]?.headers["x-api-key"], undefined, "credentials dropped across hosts");
    const lean = await leanGet(`${a.url}/here`, { proxy: settings });
    assert.equal(await lean.text(), "hello");
    assert.equal(proxy.connects.length, 2);
  });

  test("HTTPS through the tunnel: TLS to the host, verified against its certificate (child process trusting a test CA)", async () => {
    const proxy = await proxyFor_({ credentials: "me:hunter22" });
    const fixtures = new URL("../fixtures/tls/", import.meta.url);
    const payload = randomBytes(1_500_000);
    const seen: IncomingHttpHeaders[] = [];
    const server = createHttpsServer(
      { key: readFileSync(new URL("key.pem", fixtures)), cert: readFileSync(new URL("cert.pem", fixtures)) },
      (req, res) => {
        seen.push(req.headers);
        res.writeHead(200, { "content-length": payload.length });
        res.end(payload);
      },
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    closers.push(() => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const { port } = server.address() as AddressInfo;
    const child = fileURLToPath(new URL("../helpers/proxy-child.ts", import.meta.url));
    const env = { ...process.env, NODE_EXTRA_CA_CERTS: fileURLToPath(new URL("cert.pem", fixtures)) };
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ["--import", "tsx", child, `https://localhost:${port}/archive.tar`, proxy.urlWith("me:hunter22")],
      { env },
    );
    const out = JSON.parse(stdout) as { lean: unknown; fetch: unknown };
    const expected = { status: 200, bytes: payload.length, sha256: sha(payload) };
    assert.deepEqual(out.lean, expected);
    assert.deepEqual(out.fetch, expected);
    assert.equal(proxy.tunnels, 2);
    assert.deepEqual(
      proxy.connects.map((c) => c.target),
      [`localhost:${port}`, `localhost:${port}`],
    );
    assert.equal(seen.length, 2);
    for (const h of seen) assert.equal(h["proxy-authorization"], undefined);

    // The certificate is checked against the URL's host: an IP it does not list fails, through the tunnel too.
    const other = createHttpsServer(
      { key: readFileSync(new URL("key.pem", fixtures)), cert: readFileSync(new URL("cert.pem", fixtures)) },
      (_req, res) => res.end("should not be read"),
    );
    await new Promise<void>((resolve) => other.listen(0, "127.0.0.2", resolve));
    closers.push(() => {
      other.closeAllConnections();
      return new Promise<void>((resolve) => other.close(() => resolve()));
    });
    const otherPort = (other.address() as AddressInfo).port;
    const bad = await promisify(execFile)(
      process.execPath,
      ["--import", "tsx", child, `https://127.0.0.2:${otherPort}/x`, proxy.urlWith("me:hunter22")],
      {
        env,
      },
    );
    const refused = JSON.parse(bad.stdout) as { lean: { error?: string }; fetch: { error?: string } };
    assert.match(String(refused.lean.error), /IP: 127\.0\.0\.2 is not in the cert's list/);
    assert.match(String(refused.fetch.error), /IP: 127\.0\.0\.2 is not in the cert's list/);
  });
});
