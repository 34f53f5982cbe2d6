/**
 * Types read as the service sends them (issue 13 item 6): user_metadata values that are not strings,
 * tokenizer_id with a `:suffix` (dropped, as the Python SDK does), timestamps without an offset (read as UTC).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { RestClient } from "../src/index.js";
import { Transport } from "../src/internal/transport.js";
import { GetInfoResponseSchema } from "../src/internal/schemas.js";
import { startScriptedServer } from "./helpers/http-server.js";

const RUN = {
  training_run_id: "sess-1:train:0",
  base_model: "Qwen/Qwen3-8B",
  model_owner: "user-1",
  is_lora: true,
  lora_rank: 8,
  last_request_time: "2026-01-15T10:20:30.123456",
  last_checkpoint: {
    checkpoint_id: "weights/a",
    checkpoint_type: "training",
    time: "2026-01-15T10:00:00",
    tinker_path: "tinker://sess-1:train:0/weights/a",
    expires_at: null,
  },
  user_metadata: { epochs: 3, lr: 0.001, tags: ["a", "b"], note: "plain" },
};

test("a run with non-string metadata and offset-less timestamps is read, the times as UTC", async () => {
  const server = await startScriptedServer(() => ({ body: RUN }));
  try {
    const rest = new RestClient(new Transport({ baseUrl: server.url, apiKey: "tml-test" }));
    const run = await rest.getTrainingRun("sess-1:train:0");
    assert.deepEqual(run.user_metadata, RUN.user_metadata);
    assert.equal(run.last_request_time, "2026-01-15T10:20:30.123456Z");
    assert.equal(Date.parse(run.last_checkpoint!.time), Date.UTC(2026, 0, 15, 10, 0, 0));
  } finally {
    await server.close();
  }
});

test("tokenizer_id loses its :suffix; timestamps with an offset still parse and garbage still fails", async () => {
  const info = GetInfoResponseSchema.parse({
    model_id: "m",
    model_data: { arch: "qwen3", model_name: "Qwen/Qwen3-8B", tokenizer_id: "Qwen/Qwen3-8B:rev-2" },
  });
  assert.equal(info.model_data.tokenizer_id, "Qwen/Qwen3-8B");
  assert.equal(GetInfoResponseSchema.parse({ model_id: "m", model_data: { tokenizer_id: null } }).model_data.tokenizer_id, null);
  const server = await startScriptedServer([
    { body: { ...RUN, last_request_time: "2026-01-15T10:20:30+02:00" } },
    { body: { ...RUN, last_request_time: "yesterday" } },
  ]);
  try {
    const rest = new RestClient(new Transport({ baseUrl: server.url, apiKey: "tml-test", maxRetries: 0 }));
    assert.equal((await rest.getTrainingRun("r")).last_request_time, "2026-01-15T10:20:30+02:00");
    await assert.rejects(rest.getTrainingRun("r"), /last_request_time/);
  } finally {
    await server.close();
  }
});
