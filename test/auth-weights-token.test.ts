/**
 * Other users' checkpoints (PROTOCOL §10.3): with weightsAccessToken, createTrainingClientFromState* reads the
 * weights info as the checkpoint's owner and sends the resolved token with load_weights, so a private
 * checkpoint of another account loads; plain and JWT mode. A checkpoint without LoRA rank is a clear error.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { InvalidArgumentError, NotFoundError, ServiceClient, startLocalServer, type LocalServerOptions } from "../src/index.js";
import { startScriptedServer } from "./helpers/http-server.js";
import { batch, BASE_MODEL, trainSteps } from "./helpers/training.js";

const OTHER_KEY = "tml-second-user-key";

async function sharedCheckpoint(options: LocalServerOptions): Promise<void> {
  await using server = await startLocalServer({ ...options, extraApiKeys: [OTHER_KEY] });
  await using owner = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey });
  const a = await owner.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4, seed: 5 });
  await trainSteps(a, 0, 2);
  const { path } = await a.saveState("private");
  const expected = (await a.forward(batch(9), "cross_entropy")).metrics["loss:sum"];

  await using other = new ServiceClient({ baseUrl: server.baseUrl, apiKey: OTHER_KEY });
  await assert.rejects(other.createTrainingClientFromState(path), NotFoundError, "private to its owner without the token");
  const b = await other.createTrainingClientFromStateWithOptimizer(path, { weightsAccessToken: server.apiKey });
  assert.notEqual(b.modelId, a.modelId);
  assert.equal((await b.forward(batch(9), "cross_entropy")).metrics["loss:sum"], expected, "the loaded weights are the owner's");

  const infos = server.requests.filter((r) => r.path === "/api/v1/weights_info");
  const lastInfo = infos[infos.length - 1]!;
  const load = server.requests.filter((r) => r.path === "/api/v1/load_weights").at(-1)!;
  const token = (load.body as { weights_access_token?: string }).weights_access_token;
  if (options.clientConfig?.pjwt_auth_enabled === true) {
    assert.ok(String(lastInfo.headers["x-api-key"]).startsWith("eyJ"), "weights info read with the owner's JWT");
    assert.ok(token?.startsWith("eyJ"), "load_weights carries the JWT the token resolved to");
  } else {
    assert.equal(lastInfo.headers["x-api-key"], server.apiKey, "weights info read with the token");
    assert.equal(token, server.apiKey);
  }
  // The new model belongs to the caller, not to the checkpoint's owner.
  assert.ok(load.headers["x-api-key"] !== server.apiKey);
}

test("a private checkpoint of another account loads with its weights access token", () => sharedCheckpoint({}));

test("the same in JWT mode: the token is exchanged for the owner's JWT", () =>
  sharedCheckpoint({ clientConfig: { pjwt_auth_enabled: true } }));

test("a checkpoint whose weights info has no LoRA rank is a clear error, before any model is created", async () => {
  const server = await startScriptedServer((req) => {
    if (req.path === "/api/v1/client/config") return { body: {} };
    if (req.path === "/api/v1/weights_info") return { body: { base_model: "Qwen/Qwen3-8B", is_lora: false } };
    return { status: 500, body: { detail: "not expected" } };
  });
  try {
    await using service = new ServiceClient({ baseUrl: server.url, apiKey: "tml-test" });
    await assert.rejects(
      service.createTrainingClientFromState("tinker://run-1/weights/full", { weightsAccessToken: "not-a-key-123" }),
      (err: unknown) => err instanceof InvalidArgumentError && !err.message.includes("not-a-key-123"),
    );
    await assert.rejects(
      service.createTrainingClientFromState("tinker://run-1/weights/full"),
      (err: unknown) =>
        err instanceof InvalidArgumentError && /no LoRA rank/.test(err.message) && err.message.includes("tinker://run-1/weights/full"),
    );
    assert.deepEqual(
      server.requests.map((r) => r.path),
      ["/api/v1/client/config", "/api/v1/weights_info"],
    );
  } finally {
    await server.close();
  }
});
