/**
 * createTrainingClientFromState* in both modes of the client config (PROTOCOL §10.3), against the local server:
 * `create_model_via_load_weights` sends one session-addressed load_weights; otherwise weights_info, create_model,
 * then load_weights. Both resume bit for bit.
 */
import { test, describe, after } from "node:test";
import assert from "node:assert/strict";
import { ServiceClient, startLocalServer, type LocalServer } from "../src/index.js";
import { BASE_MODEL, trainSteps } from "./helpers/training.js";

const servers: LocalServer[] = [];
const services: ServiceClient[] = [];
after(async () => {
  for (const s of services) await s.close();
  for (const s of servers) await s.close();
});

function client(server: LocalServer): ServiceClient {
  const service = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey });
  services.push(service);
  return service;
}

for (const viaLoad of [true, false]) {
  describe(`create from state, create_model_via_load_weights: ${viaLoad}`, () => {
    test("the resumed client continues bit for bit, and the wire is the SDK's", async () => {
      const server = await startLocalServer({ clientConfig: { create_model_via_load_weights: viaLoad } });
      servers.push(server);
      const original = await client(server).createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4, seed: 3 });
      await trainSteps(original, 0, 2);
      const { path } = await original.saveState("mid");
      const expected = await trainSteps(original, 2, 2);

      const service = client(server);
      const mark = server.requests.length;
      const resumed = await service.createTrainingClientFromStateWithOptimizer(path, { userMetadata: { from: "mid" } });
      const seen = server.requests
        .slice(mark)
        .filter((r) => r.path !== "/api/v1/retrieve_future" && r.path !== "/api/v1/session_heartbeat");
      const session = seen.find((r) => r.path === "/api/v1/create_session");
      assert.ok(session !== undefined);
      if (viaLoad) {
        assert.deepEqual(
          seen.map((r) => r.path),
          ["/api/v1/client/config", "/api/v1/create_session", "/api/v1/load_weights", "/api/v1/get_info"],
        );
        const load = seen[2]!.body as Record<string, unknown>;
        assert.equal(typeof load["session_id"], "string");
        assert.deepEqual(load, {
          session_id: load["session_id"],
          model_seq_id: 0,
          user_metadata: { from: "mid" },
          path,
          optimizer: true,
          type: "load_weights",
        });
        assert.equal(resumed.modelId, `${String(load["session_id"])}:train:0`);
      } else {
        assert.deepEqual(
          seen.map((r) => r.path),
          ["/api/v1/client/config", "/api/v1/weights_info", "/api/v1/create_session", "/api/v1/create_model", "/api/v1/load_weights"],
        );
        assert.deepEqual(seen[4]!.body, { model_id: resumed.modelId, seq_id: 1, path, optimizer: true, type: "load_weights" });
      }
      assert.equal(resumed.baseModel, BASE_MODEL);
      const firstSeq = resumed.nextSeqId;
      assert.equal(firstSeq, viaLoad ? 1 : 2, "after create-via-load the next op is seq 1");
      assert.deepEqual(await trainSteps(resumed, 2, 2), expected);

      // Weights only: a fresh optimizer, sent as optimizer: false.
      const warm = await client(server).createTrainingClientFromState(path, { baseModel: BASE_MODEL });
      const loads = server.requests.filter((r) => r.path === "/api/v1/load_weights").map((r) => r.body as Record<string, unknown>);
      assert.equal(loads.at(-1)!["optimizer"], false);
      if (viaLoad) assert.equal(loads.at(-1)!["base_model"], BASE_MODEL);
      assert.equal(warm.baseModel, BASE_MODEL);
      const warmLosses = await trainSteps(warm, 2, 1);
      assert.equal(warmLosses[0], expected[0], "the first loss depends only on the weights");
    });
  });
}

test("create_model_via_load_weights: when reading the new model's info fails, the model is unloaded and the error thrown (nothing leaks)", async () => {
  const server = await startLocalServer({ clientConfig: { create_model_via_load_weights: true } });
  servers.push(server);
  const original = await client(server).createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
  const { path } = await original.saveState("leak-check");
  server.setFaults([{ path: "/api/v1/get_info", status: 403, times: 1 }]);
  const service = client(server);
  const mark = server.requests.length;
  await assert.rejects(
    service.createTrainingClientFromState(path),
    (err: unknown) => err instanceof Error && /403|Forbidden|injected/.test(err.message),
  );
  const load = server.requests.slice(mark).find((r) => r.path === "/api/v1/load_weights");
  assert.ok(load !== undefined);
  const modelId = `${String((load.body as Record<string, unknown>)["session_id"])}:train:0`;
  const unload = server.requests.slice(mark).find((r) => r.path === "/api/v1/unload_model");
  assert.equal((unload?.body as Record<string, unknown> | undefined)?.["model_id"], modelId, "the model made by the load is unloaded");
});
