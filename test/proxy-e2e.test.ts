/**
 * End to end through an HTTP proxy: a ServiceClient with `proxy` trains and saves on the local server, and the
 * checkpoint is downloaded through the same proxy (CONNECT tunnels counted by test/helpers/connect-proxy.ts);
 * RestClient.fromEnv reads HTTP_PROXY from the env it is given and sends loopback direct; proxy credentials reach the proxy and
 * never the server, nor any message.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { ProxyError, RestClient, ServiceClient, downloadCheckpoint } from "../src/index.js";
import { type LocalServer, startLocalServer } from "../src/server/index.js";
import { type ConnectProxy, startConnectProxy } from "./helpers/connect-proxy.js";
import { ADAM, BASE_MODEL, batch } from "./helpers/training.js";

const USER = "build-bot";
const PASSWORD = "pr0xy-Secret";

async function filesOf(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort())
    out[name] = createHash("sha256")
      .update(await readFile(path.join(dir, name)))
      .digest("hex");
  return out;
}

describe("through a CONNECT proxy, end to end", () => {
  let server: LocalServer;
  let proxy: ConnectProxy;
  let dir: string;
  before(async () => {
    server = await startLocalServer({ futureDelayMs: 0 });
    proxy = await startConnectProxy({ credentials: `${USER}:${PASSWORD}` });
    dir = await mkdtemp(path.join(tmpdir(), "tinker-proxy-"));
  });
  after(async () => {
    await proxy.close();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  test("training, REST and the checkpoint download all go through the proxy; bytes equal a direct download", async () => {
    const host = new URL(server.baseUrl).host;
    await using service = new ServiceClient({
      baseUrl: server.baseUrl,
      apiKey: server.apiKey,
      proxy: proxy.urlWith(`${USER}:${PASSWORD}`),
    });
    const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
    await training.forwardBackward(batch(0), "cross_entropy");
    await training.optimStep(ADAM);
    const { path: ckpt } = await training.saveState("via-proxy");
    const afterTraining = proxy.connects.length;
    assert.ok(proxy.tunnels > 0 && afterTraining > 0);
    assert.ok(proxy.connects.every((c) => c.target === host));

    const rest = service.createRestClient();
    const bytesAtStart = proxy.bytesDown;
    const viaProxy = await downloadCheckpoint(rest, ckpt, { outputDir: path.join(dir, "proxied") });
    assert.ok(proxy.connects.length > afterTraining, "the archive came through the proxy");
    assert.ok(proxy.bytesDown - bytesAtStart > viaProxy.bytes, "all its bytes");
    const archiveGets = server.requests.filter((r) => r.path.startsWith("/local/archives/"));
    assert.equal(archiveGets.length, 1);

    const bytesBefore = proxy.bytesDown;
    const direct = await downloadCheckpoint(rest, ckpt, { outputDir: path.join(dir, "direct"), proxy: false });
    assert.equal(direct.bytes, viaProxy.bytes);
    assert.deepEqual(await filesOf(viaProxy.destination), await filesOf(direct.destination));
    assert.ok((await filesOf(viaProxy.destination))["checkpoint_complete"] !== undefined);
    assert.equal(server.requests.filter((r) => r.path.startsWith("/local/archives/")).length, 2);
    assert.ok(proxy.bytesDown - bytesBefore < direct.bytes, "proxy: false on the download went direct (only the URL request was proxied)");

    for (const r of server.requests) assert.equal(r.headers["proxy-authorization"], undefined, `${r.method} ${r.path}`);
    const basic = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString("base64")}`;
    assert.ok(proxy.connects.every((c) => c.headers["proxy-authorization"] === basic));
  });

  test("RestClient.fromEnv: HTTP_PROXY is used, loopback goes direct, a wrong password is a 407 ProxyError without it", async (t) => {
    // tinker.test: a name only the proxy resolves (to the local server); 127.0.0.1 itself never goes to an env proxy.
    const base = { TINKER_BASE_URL: server.baseUrl.replace("127.0.0.1", "tinker.test"), TINKER_API_KEY: server.apiKey };
    // A second proxy: the first one's tunnels are still open and would be reused (keep-alive).
    const proxy = await startConnectProxy({ credentials: `${USER}:${PASSWORD}` });
    t.after(() => proxy.close());
    const before = proxy.connects.length;
    const proxied = RestClient.fromEnv({}, { ...base, HTTP_PROXY: proxy.urlWith(`${USER}:${PASSWORD}`) });
    await proxied.listTrainingRuns();
    assert.ok(proxy.connects.length > before);
    assert.equal(proxy.connects.at(-1)?.target, `tinker.test:${new URL(server.baseUrl).port}`);

    // The local server as `tinker-ts serve` prints it (127.0.0.1) on a machine with a proxy set: direct.
    const local = RestClient.fromEnv(
      {},
      { TINKER_BASE_URL: server.baseUrl, TINKER_API_KEY: server.apiKey, HTTP_PROXY: proxy.urlWith(`${USER}:${PASSWORD}`) },
    );
    const mid = proxy.connects.length;
    const bytes = proxy.bytesDown; // bytes, not CONNECTs: a kept-alive tunnel would carry requests without a new CONNECT
    await local.listTrainingRuns();
    assert.equal(proxy.bytesDown, bytes, "nothing went through the proxy");

    const wrong = RestClient.fromEnv({ maxRetries: 3 }, { ...base, HTTP_PROXY: proxy.urlWith(`${USER}:wrong-${PASSWORD}`) });
    const err = await wrong.listTrainingRuns().catch((e: unknown) => e);
    assert.ok(err instanceof ProxyError, String(err));
    assert.equal(err.status, 407);
    assert.equal(proxy.connects.length, mid + 1, "a 407 is not retried");
    for (const text of [err.message, String(err.stack), JSON.stringify(err)]) {
      assert.ok(!text.includes(PASSWORD), text);
    }
    assert.match(err.message, /rejected the credentials in the proxy URL/);
  });
});
