/**
 * Wire details of PROTOCOL §2.1: defaultHeaders and the Cloudflare Access headers go to the service and never to
 * a download host; the User-Agent names tinker-ts and its version; polls carry X-Tinker-Request-Type and
 * X-Tinker-Request-Iteration and start with allow_metadata_only true, as the Python SDK sends them.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { downloadCheckpoint, RestClient, ServiceClient, startLocalServer } from "../src/index.js";
import { startArchiveHost } from "./helpers/archive-host.js";
import { validCheckpointTar } from "./helpers/crafted-tar.js";
import { ADAM, batch, BASE_MODEL } from "./helpers/training.js";

const CF_ENV = { CLOUDFLARE_ACCESS_CLIENT_ID: "cf-client-id.access", CLOUDFLARE_ACCESS_CLIENT_SECRET: "cf-client-secret-value" };
const pkg = createRequire(import.meta.url)("../package.json") as { version: string };

test("CF-Access and defaultHeaders reach the service, never the download host on another origin", async () => {
  const host = await startArchiveHost();
  const out = await mkdtemp(path.join(tmpdir(), "tinker-headers-"));
  try {
    const ckpt = "tinker://run-h/weights/w1";
    host.setArchive(ckpt, validCheckpointTar());
    const rest = RestClient.fromEnv({ baseUrl: host.apiUrl, apiKey: "tml-headers-test", defaultHeaders: { "X-Team": "ml-infra" } }, CF_ENV);
    await downloadCheckpoint(rest, ckpt, { outputDir: out });
    const api = host.apiRequests.filter((r) => r.url.includes("/archive"));
    assert.equal(api.length, 1);
    assert.equal(api[0]!.headers["cf-access-client-id"], CF_ENV.CLOUDFLARE_ACCESS_CLIENT_ID);
    assert.equal(api[0]!.headers["cf-access-client-secret"], CF_ENV.CLOUDFLARE_ACCESS_CLIENT_SECRET);
    assert.equal(api[0]!.headers["x-team"], "ml-infra");
    assert.ok(host.downloadRequests.length >= 1);
    for (const r of host.downloadRequests) {
      const names = Object.keys(r.headers).map((n) => n.toLowerCase());
      assert.ok(
        !names.some((n) => n.startsWith("cf-access") || n === "x-api-key" || n === "x-team"),
        `download host saw ${names.join(", ")}`,
      );
      assert.ok(!JSON.stringify(r.headers).includes(CF_ENV.CLOUDFLARE_ACCESS_CLIENT_SECRET));
    }
  } finally {
    await host.close();
    await rm(out, { recursive: true, force: true });
  }
});

test("ServiceClient: defaultHeaders on every request (never replacing X-API-Key), a tinker-ts User-Agent, poll headers as the SDK", async () => {
  await using server = await startLocalServer();
  await using service = new ServiceClient({
    baseUrl: server.baseUrl,
    apiKey: server.apiKey,
    defaultHeaders: { "X-Team": "ml-infra", "X-API-Key": "tml-not-this-one" },
  });
  const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
  await training.forwardBackward(batch(0), "cross_entropy");
  await training.optimStep(ADAM);
  const reqs = server.requests.filter((r) => r.path.startsWith("/api/v1/"));
  assert.ok(reqs.length >= 5);
  for (const r of reqs) {
    assert.equal(r.headers["x-team"], "ml-infra", r.path);
    assert.equal(r.headers["x-api-key"], server.apiKey, r.path);
    assert.ok(String(r.headers["user-agent"]).startsWith(`tinker-ts/${pkg.version}`), String(r.headers["user-agent"]));
  }
  const polls = reqs.filter((r) => r.path === "/api/v1/retrieve_future");
  const types = new Set(polls.map((r) => r.headers["x-tinker-request-type"]));
  for (const t of ["CreateModel", "ForwardBackward", "OptimStep"]) assert.ok(types.has(t), `no poll typed ${t}: ${[...types].join(", ")}`);
  for (const r of polls) {
    assert.match(String(r.headers["x-tinker-request-iteration"]), /^\d+$/);
    assert.equal((r.body as { allow_metadata_only: boolean }).allow_metadata_only, true);
  }
  const firstOfEach = new Map<string, string>();
  for (const r of polls) {
    const id = (r.body as { request_id: string }).request_id;
    if (!firstOfEach.has(id)) firstOfEach.set(id, String(r.headers["x-tinker-request-iteration"]));
  }
  assert.deepEqual([...new Set(firstOfEach.values())], ["0"]);
});
