/**
 * The training host dispatches loss_fn / loss_fn_config / forward_only into the tiny model, over real HTTP
 * (JSON forward_backward): all five losses with real-sized token ids, model input errors as 400s naming the
 * field (the seq id is used up, later operations run), and forward_only accumulating no gradient.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startLocalServer, type LocalServer } from "../../src/server/index.js";

// biome-ignore lint/suspicious/noExplicitAny: parsed JSON answers of the server, read field by field as the tests assert
type AnyJson = any;

describe("forward_backward losses over HTTP", () => {
  let server: LocalServer;
  let modelId: string;
  let seq = 0;

  const call = async (path: string, body: unknown): Promise<{ status: number; body: AnyJson }> => {
    const r = await fetch(`${server.baseUrl}${path}`, {
      method: "POST",
      headers: { "x-api-key": server.apiKey, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const text = await r.text();
    return { status: r.status, body: text === "" ? undefined : JSON.parse(text) };
  };
  const result = async (requestId: string): Promise<AnyJson> => {
    for (;;) {
      const r = await call("/api/v1/retrieve_future", { request_id: requestId });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      if (r.body.type !== "try_again") return r.body;
    }
  };
  const run = async (path: string, body: AnyJson): Promise<AnyJson> => {
    const r = await call(path, body);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const out = await result(r.body.request_id);
    assert.ok(!("error" in out), JSON.stringify(out));
    return out;
  };
  const fb = (input: AnyJson, extra: AnyJson = {}) =>
    call("/api/v1/forward_backward", { model_id: modelId, seq_id: ++seq, forward_backward_input: input, ...extra });

  const tokens = [151_644, 100_000, 120_000, 151_935];
  const targets = [100_000, 120_000, 151_935, 151_645];
  const ceInput = {
    data: [
      {
        model_input: { chunks: [{ type: "encoded_text", tokens }] },
        loss_fn_inputs: { target_tokens: { data: targets, dtype: "int64" }, weights: { data: [1, 1, 1, 1], dtype: "float32" } },
      },
    ],
    loss_fn: "cross_entropy",
  };

  before(async () => {
    server = await startLocalServer();
    const session = (await call("/api/v1/create_session", { tags: [], user_metadata: {}, sdk_version: "test" })).body.session_id;
    modelId = (
      await run("/api/v1/create_model", { session_id: session, model_seq_id: 0, base_model: "Qwen/Qwen3-8B", lora_config: { rank: 4 } })
    ).model_id;
  });
  after(async () => {
    await server.close();
  });

  test("all five losses run with real-sized ids and return float32 logprobs and loss:sum", async () => {
    const ce = await result((await fb(ceInput)).body.request_id);
    const lp: number[] = ce.loss_fn_outputs[0].logprobs.data;
    assert.equal(lp.length, 4);
    assert.ok(Math.abs(ce.metrics["loss:sum"] + lp.reduce((a, b) => a + b, 0)) < 1e-4);
    const q = lp.map((v) => v + 0.1);
    const adv = [1, -0.5, 0.25, 2];
    for (const [lossFn, cfg] of [
      ["importance_sampling", null],
      ["ppo", { clip_low_threshold: 0.9, clip_high_threshold: 1.1 }],
      ["cispo", null],
      ["dro", { beta: 0.1 }],
    ] as const) {
      const data = [
        {
          model_input: ceInput.data[0]!.model_input,
          loss_fn_inputs: {
            target_tokens: { data: targets, dtype: "int64" },
            logprobs: { data: q, dtype: "float32" },
            advantages: { data: adv, dtype: "float32" },
          },
        },
      ];
      const out = await result((await fb({ data, loss_fn: lossFn, loss_fn_config: cfg })).body.request_id);
      assert.ok(!("error" in out), JSON.stringify(out));
      const got: number[] = out.loss_fn_outputs[0].logprobs.data;
      const r = got.map((v, i) => Math.exp(v - q[i]!));
      const expected =
        lossFn === "importance_sampling"
          ? -r.reduce((s, ri, i) => s + ri * adv[i]!, 0)
          : lossFn === "ppo"
            ? -r.reduce((s, ri, i) => s + Math.min(ri * adv[i]!, Math.min(Math.max(ri, 0.9), 1.1) * adv[i]!), 0)
            : lossFn === "cispo"
              ? -r.reduce((s, ri, i) => s + Math.min(Math.max(ri, 0), 4) * got[i]! * adv[i]!, 0)
              : -got.reduce((s, v, i) => s + v * adv[i]! - 0.05 * (v - q[i]!) ** 2, 0);
      assert.ok(Math.abs(out.metrics["loss:sum"] - expected) < 1e-4, `${lossFn}: ${out.metrics["loss:sum"]} vs ${expected}`);
    }
    await run("/api/v1/optim_step", { model_id: modelId, seq_id: ++seq, adam_params: { learning_rate: 0.01 } });
  });

  test("model input errors are 400s naming the field; the seq id is used up and later operations run", async () => {
    const noWeights = {
      ...ceInput,
      data: [{ ...ceInput.data[0]!, loss_fn_inputs: { target_tokens: ceInput.data[0]!.loss_fn_inputs.target_tokens } }],
    };
    const r1 = await fb(noWeights);
    assert.equal(r1.status, 400, JSON.stringify(r1.body));
    assert.equal(r1.body.field, "body.forward_backward_input.data[0].loss_fn_inputs.weights");
    assert.match(JSON.stringify(r1.body), /is required for cross_entropy/);
    const bigToken = {
      ...ceInput,
      data: [{ ...ceInput.data[0]!, model_input: { chunks: [{ type: "encoded_text", tokens: [1, 2, 151_936, 3] }] } }],
    };
    const r2 = await fb(bigToken);
    assert.equal(r2.status, 400);
    assert.equal(r2.body.field, "body.forward_backward_input.data[0].model_input.chunks[0].tokens[2]");
    assert.match(JSON.stringify(r2.body), /token 151936 is not an integer in \[0, 151936\)/);
    const r3 = await fb({ ...ceInput, loss_fn: "ppo", loss_fn_config: { clip_low_threshold: 2 } });
    assert.equal(r3.status, 400);
    const ok = await result((await fb(ceInput)).body.request_id);
    assert.ok(Number.isFinite(ok.metrics["loss:sum"]), JSON.stringify(ok));
    await run("/api/v1/optim_step", { model_id: modelId, seq_id: ++seq, adam_params: { learning_rate: 0.01 } });
  });

  test("forward_only: the loss is computed and no gradient is accumulated", async () => {
    const r = await fb(ceInput, { forward_only: true });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.ok(Number.isFinite((await result(r.body.request_id)).metrics["loss:sum"]));
    const step = await run("/api/v1/optim_step", { model_id: modelId, seq_id: ++seq, adam_params: { learning_rate: 0.01 } });
    assert.equal(step.metrics.grad_norm, 0, "nothing was accumulated");
    const fwd = await result((await fb(ceInput, { forward_only: true })).body.request_id);
    const full = await result((await fb(ceInput)).body.request_id);
    assert.deepEqual(full.loss_fn_outputs, fwd.loss_fn_outputs, "forward_only reports what forward_backward reports");
    const step2 = await run("/api/v1/optim_step", { model_id: modelId, seq_id: ++seq, adam_params: { learning_rate: 0.01 } });
    assert.ok(step2.metrics.grad_norm > 0);
  });
});
