/**
 * The retry budget (decision 11 of PROTOCOL.md, issue 12 item 3), over real HTTP against scripted servers.
 * Time is a fake clock that the injected sleep advances, so a 300 s budget runs in milliseconds.
 */
import assert from "node:assert/strict";
import { describe, it, type TestContext } from "node:test";
import { z } from "zod";
import {
  APIConnectionError,
  APIError,
  APIUserAbortError,
  BadRequestError,
  ConflictError,
  InternalServerError,
  RateLimitError,
} from "../../src/index.js";
import { Transport, type CallOptions, type TransportConfig } from "../../src/internal/transport.js";
import { startScriptedServer, type ScriptHandler, type ScriptedReply, type ScriptedServer } from "../helpers/http-server.js";

const API_KEY = "tml-budget-secret-key-0123456789";
const FUTURE = { request_id: "req-1", model_id: "sess-0:train:0" };
const SAVE_BODY = { model_id: "sess-0:train:0", path: "ckpt-1", seq_id: 7, overwrite: false, type: "save_weights" as const };
const FutureSchema = z.object({ request_id: z.string(), model_id: z.string().optional() });

/** A fake clock: `sleep` records the delay and moves `now` forward by it. */
export function fakeClock(): {
  now: () => number;
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  delays: number[];
  elapsed: () => number;
} {
  let t = 1_000_000;
  const start = t;
  const delays: number[] = [];
  return {
    now: () => t,
    delays,
    elapsed: () => t - start,
    sleep: async (ms, signal) => {
      if (signal?.aborted === true) throw signal.reason;
      delays.push(ms);
      t += ms;
    },
  };
}

async function serve(t: TestContext, script: ScriptHandler | ScriptedReply[]): Promise<ScriptedServer> {
  const server = await startScriptedServer(script);
  t.after(() => server.close());
  return server;
}

function transportFor(server: ScriptedServer, config: Partial<TransportConfig> = {}) {
  const clock = fakeClock();
  const transport = new Transport({ baseUrl: server.url, apiKey: API_KEY, sleep: clock.sleep, now: clock.now, random: () => 0, ...config });
  return { transport, clock };
}

function save(transport: Transport, options?: CallOptions) {
  return transport.call(
    "save_weights",
    (init) => transport.api.POST("/api/v1/save_weights", { body: SAVE_BODY, ...init }),
    FutureSchema,
    options,
  );
}

async function rejectsWith<E extends Error>(promise: Promise<unknown>, cls: abstract new (...args: never[]) => E): Promise<E> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${String(err)}`);
    return err;
  }
  assert.fail(`expected ${cls.name}, but it resolved`);
}

describe("retry budget (decision 11)", () => {
  it("retries 503 for the default 300 s budget, backoff capped at 30 s, same body and idempotency key", async (t) => {
    const server = await serve(t, () => ({ status: 503, body: { detail: "overloaded" } }));
    const { transport, clock } = transportFor(server);
    const err = await rejectsWith(save(transport), InternalServerError);
    assert.ok(server.requests.length > 10, `only ${server.requests.length} attempts`);
    assert.ok(clock.elapsed() >= 299_000 && clock.elapsed() <= 300_000, `elapsed ${clock.elapsed()}`);
    assert.ok(Math.max(...clock.delays) <= 30_000, `a delay over 30 s: ${Math.max(...clock.delays)}`);
    assert.deepEqual(clock.delays.slice(0, 7), [500, 1000, 2000, 4000, 8000, 16000, 30000]);
    assert.equal(new Set(server.requests.map((r) => r.headers["x-idempotency-key"])).size, 1);
    assert.equal(new Set(server.requests.map((r) => r.body)).size, 1);
    assert.match(err.message, new RegExp(`after ${server.requests.length} attempts`));
    assert.match(err.message, /may have been applied/);
    assert.match(err.message, /before sending it again|instead of resubmitting/);
  });

  it("retryBudgetMs per client and per call; maxRetries caps the attempts inside the budget", async (t) => {
    const server = await serve(t, () => ({ status: 502 }));
    const { transport, clock } = transportFor(server, { retryBudgetMs: 10_000 });
    await rejectsWith(save(transport), InternalServerError);
    assert.ok(clock.elapsed() <= 10_000, `elapsed ${clock.elapsed()}`);
    assert.deepEqual(clock.delays, [500, 1000, 2000, 4000, 2500]);
    const n = server.requests.length;
    const t0 = clock.elapsed();
    await rejectsWith(save(transport, { retryBudgetMs: 1_000 }), InternalServerError);
    assert.ok(clock.elapsed() - t0 <= 1_000);
    const m = server.requests.length;
    await rejectsWith(save(transport, { maxRetries: 2, retryBudgetMs: 300_000 }), InternalServerError);
    assert.equal(server.requests.length - m, 3, "maxRetries: 2 → 3 attempts");
    assert.ok(m - n >= 2);
  });

  it("honours Retry-After (clipped to the budget) and survives a long rate limit", async (t) => {
    let i = 0;
    const server = await serve(t, () => (++i <= 20 ? { status: 429, headers: { "retry-after": "7" } } : { body: FUTURE }));
    const { transport, clock } = transportFor(server);
    assert.deepEqual(await save(transport), FUTURE);
    assert.deepEqual(new Set(clock.delays), new Set([7000]));
    assert.equal(server.requests.length, 21);
  });

  it("after exhausting on 429 the error says the request was not applied", async (t) => {
    const server = await serve(t, () => ({ status: 429 }));
    const { transport } = transportFor(server, { retryBudgetMs: 5_000 });
    const err = await rejectsWith(save(transport), RateLimitError);
    assert.match(err.message, /was not applied/);
  });

  it("retries dropped connections for the budget, then says the request may have been applied", async (t) => {
    const server = await serve(t, () => ({ destroy: true }));
    const { transport, clock } = transportFor(server, { retryBudgetMs: 20_000 });
    const err = await rejectsWith(save(transport), APIConnectionError);
    assert.ok(server.requests.length >= 5);
    assert.ok(clock.elapsed() <= 20_000);
    assert.match(err.message, /may have been applied/);
  });

  it("402 pauses 5 s at a time without using up attempts, inside the billing window", async (t) => {
    let i = 0;
    const server = await serve(t, () => (++i <= 4 ? { status: 402, body: { detail: "billing" } } : { body: FUTURE }));
    const { transport, clock } = transportFor(server, { maxRetries: 0 });
    assert.deepEqual(await save(transport), FUTURE);
    assert.deepEqual(clock.delays, [5000, 5000, 5000, 5000]);
  });

  it("402 ends with an APIError once the billing window is over", async (t) => {
    const server = await serve(t, () => ({ status: 402, body: { detail: "payment required" } }));
    const { transport, clock } = transportFor(server, { billingMaxPauseMs: 60_000 });
    const err = await rejectsWith(save(transport), APIError);
    assert.equal(err.status, 402);
    assert.ok(clock.elapsed() >= 60_000 && clock.elapsed() <= 70_000, `elapsed ${clock.elapsed()}`);
  });

  it("a body-less 400 is retried like a connection error, at most 16 times in a row", async (t) => {
    let i = 0;
    const server = await serve(t, () => (++i <= 3 ? { status: 400 } : { body: FUTURE }));
    const { transport } = transportFor(server);
    assert.deepEqual(await save(transport), FUTURE);
    assert.equal(server.requests.length, 4);

    const always = await serve(t, () => ({ status: 400 }));
    const { transport: t2 } = transportFor(always, { retryBudgetMs: 3_600_000 });
    await rejectsWith(save(t2), BadRequestError);
    assert.equal(always.requests.length, 17, "16 retries of an empty 400, then the error");

    const withBody = await serve(t, () => ({ status: 400, body: { detail: "bad seq_id" } }));
    const { transport: t3 } = transportFor(withBody);
    await rejectsWith(save(t3), BadRequestError);
    assert.equal(withBody.requests.length, 1, "a 400 with a body is an answer");
  });

  it("the empty-400 allowance is replenished by successes", async (t) => {
    let i = 0;
    // Each call meets one empty 400, then succeeds: 24 empty 400s in all, more than the 16 allowed without successes.
    const server = await serve(t, () => (++i % 2 === 0 ? { body: FUTURE } : { status: 400 }));
    const { transport } = transportFor(server);
    for (let k = 0; k < 24; k++) assert.deepEqual(await save(transport), FUTURE);
    assert.equal(server.requests.length, 48);
  });

  it("409 is never retried", async (t) => {
    const server = await serve(t, () => ({ status: 409, body: { detail: "exists" } }));
    const { transport } = transportFor(server);
    await rejectsWith(save(transport), ConflictError);
    assert.equal(server.requests.length, 1);
  });

  it("a response whose body is cut after the headers is retried", async (t) => {
    const server = await serve(t, [
      {
        body: `{"request_id": "req-1", "model_id"`,
        headers: { "content-type": "application/json", "content-length": "200" },
        destroyAfterBody: true,
      },
      { body: FUTURE },
    ] as ScriptedReply[]);
    const { transport } = transportFor(server);
    assert.deepEqual(await save(transport), FUTURE);
    assert.equal(server.requests.length, 2);
  });

  it("every wait is abortable: a 30 s backoff and a 402 pause end at once on abort", async (t) => {
    for (const reply of [{ status: 503, headers: { "retry-after": "30" } }, { status: 402 }] satisfies ScriptedReply[]) {
      const server = await serve(t, () => reply);
      const transport = new Transport({ baseUrl: server.url, apiKey: API_KEY }); // real sleep and clock
      const ac = new AbortController();
      const started = Date.now();
      const pending = save(transport, { signal: ac.signal });
      while (server.requests.length === 0) await new Promise((r) => setTimeout(r, 5));
      setTimeout(() => ac.abort(), 30);
      await rejectsWith(pending, APIUserAbortError);
      assert.ok(Date.now() - started < 3_000);
    }
  });

  it("reports each retry to onRetry (the CLI prints these)", async (t) => {
    const server = await serve(t, [{ status: 503 }, { destroy: true }, { body: FUTURE }]);
    const events: string[] = [];
    const { transport } = transportFor(server, { onRetry: (e) => events.push(`${e.attempt} ${e.delayMs} ${e.reason}`) });
    await save(transport);
    assert.equal(events.length, 2);
    assert.match(events[0]!, /^1 500 .*503/);
    assert.match(events[1]!, /^2 1000 .*(connection|socket|reset)/i);
  });
});
