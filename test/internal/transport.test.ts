import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it, type TestContext } from "node:test";
import {
  APIConnectionError,
  APIError,
  APITimeoutError,
  APIUserAbortError,
  AuthenticationError,
  BadRequestError,
  ConfigurationError,
  ConflictError,
  InternalServerError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  RateLimitError,
  ResponseValidationError,
  TinkerError,
  UnprocessableEntityError,
} from "../../src/core/errors.js";
import { retryDelayMs } from "../../src/internal/retry.js";
import { CheckpointSchema, UntypedAPIFutureSchema } from "../../src/internal/schemas.js";
import { Transport, normalizeBaseUrl, type CallOptions, type TransportConfig } from "../../src/internal/transport.js";
import { startScriptedServer, type ScriptHandler, type ScriptedReply, type ScriptedServer } from "../helpers/http-server.js";
import { z } from "zod";

const API_KEY = "tml-test-secret-key-0123456789";
const VERSION = (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;
const SAVE_BODY = { model_id: "sess-0:train:0", path: "ckpt-1", seq_id: 7, overwrite: false, type: "save_weights" as const };
const FUTURE = { request_id: "req-1", model_id: "sess-0:train:0" };

/**
 * A sleep that records the requested delays and returns at once (honouring an already-aborted signal), moving
 * a fake clock forward by each delay so retry budgets run on fake time.
 */
function recordingSleep(): { delays: number[]; sleep: (ms: number, signal?: AbortSignal) => Promise<void>; now: () => number } {
  const delays: number[] = [];
  let clock = 0;
  return {
    delays,
    now: () => clock,
    sleep: async (ms, signal) => {
      delays.push(ms);
      clock += ms;
      if (signal?.aborted === true) throw signal.reason;
    },
  };
}

async function serve(t: TestContext, script: ScriptHandler | ScriptedReply[]): Promise<ScriptedServer> {
  const server = await startScriptedServer(script);
  t.after(() => server.close());
  return server;
}

function transportFor(server: ScriptedServer, config: Partial<TransportConfig> = {}): { transport: Transport; delays: number[] } {
  const { delays, sleep, now } = recordingSleep();
  const transport = new Transport({ baseUrl: server.url, apiKey: API_KEY, sleep, now, random: () => 0, ...config });
  return { transport, delays };
}

function saveWeights(transport: Transport, options?: CallOptions): Promise<z.infer<typeof UntypedAPIFutureSchema>> {
  return transport.call(
    "save_weights",
    (init) => transport.api.POST("/api/v1/save_weights", { body: SAVE_BODY, ...init }),
    UntypedAPIFutureSchema,
    options,
  );
}

function getRun(transport: Transport, runId: string, options?: CallOptions): Promise<unknown> {
  return transport.call(
    "get_training_run",
    (init) =>
      transport.api.GET("/api/v1/training_runs/{training_run_id}", {
        params: { path: { training_run_id: runId }, query: { access_scope: "owned" } },
        ...init,
      }),
    z.unknown(),
    options,
  );
}

async function rejectsWith<E extends Error>(promise: Promise<unknown>, cls: abstract new (...args: never[]) => E): Promise<E> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
    return err;
  }
  assert.fail(`expected ${cls.name}, but the call succeeded`);
}

describe("headers and URLs", () => {
  it("sends X-API-Key, Accept, a tinker-ts User-Agent, Content-Type on bodies, and no key in the URL", async (t) => {
    const server = await serve(t, [{ body: FUTURE }, { body: { ok: true } }]);
    const { transport } = transportFor(server);
    assert.deepEqual(await saveWeights(transport), FUTURE);
    await getRun(transport, "run-1");

    const [post, get] = server.requests;
    assert.ok(post !== undefined && get !== undefined);
    assert.equal(post.method, "POST");
    assert.equal(post.path, "/api/v1/save_weights");
    assert.equal(post.headers["x-api-key"], API_KEY);
    assert.equal(post.headers["accept"], "application/json");
    assert.equal(post.headers["content-type"], "application/json");
    assert.equal(post.headers["user-agent"], `tinker-ts/${VERSION} (node ${process.version})`);
    assert.equal(post.headers["authorization"], undefined);
    assert.deepEqual(post.json(), SAVE_BODY);
    assert.equal(post.headers["x-tinker-retry-count"], "0");
    assert.match(String(post.headers["x-idempotency-key"]), /^tinker-ts-retry-[0-9a-f-]{36}$/);

    assert.equal(get.method, "GET");
    assert.equal(get.url, "/api/v1/training_runs/run-1?access_scope=owned");
    assert.equal(get.headers["x-api-key"], API_KEY);
    assert.equal(get.headers["content-type"], undefined);
    assert.equal(get.headers["x-idempotency-key"], undefined, "GET requests carry no idempotency key");
    assert.ok(!get.url.includes(API_KEY));
  });

  it("keeps ':' raw in path parameters and encodes '/', '?', '#', '%' and spaces", async (t) => {
    const server = await serve(t, () => ({ body: {} }));
    const { transport } = transportFor(server);
    await getRun(transport, "sess-0:train:0");
    await getRun(transport, "a/b?c#d%e f");
    assert.equal(server.requests[0]?.path, "/api/v1/training_runs/sess-0:train:0");
    assert.equal(server.requests[1]?.path, "/api/v1/training_runs/a%2Fb%3Fc%23d%25e%20f");
  });

  it("refuses empty, '.' and '..' path parameters without sending anything", async (t) => {
    const server = await serve(t, () => ({ body: {} }));
    const { transport } = transportFor(server);
    for (const bad of ["", ".", ".."]) {
      const err = await rejectsWith(getRun(transport, bad), InvalidArgumentError);
      assert.match(err.message, /training_run_id/);
    }
    assert.equal(server.requests.length, 0);
  });

  it("normalises the base URL, keeping a path prefix", async (t) => {
    const server = await serve(t, () => ({ body: FUTURE }));
    const { transport } = transportFor(server, { baseUrl: `${server.url}/services/tinker//` });
    assert.equal(transport.baseUrl, `${server.url}/services/tinker`);
    await saveWeights(transport);
    assert.equal(server.requests[0]?.path, "/services/tinker/api/v1/save_weights");
  });

  it("rejects bad base URLs and API keys up front", () => {
    assert.equal(normalizeBaseUrl(" http://127.0.0.1:8080/ "), "http://127.0.0.1:8080");
    for (const bad of ["", "localhost:8080", "ftp://h/", "http://h/?x=1", "http://h/#f", "not a url"]) {
      assert.throws(() => normalizeBaseUrl(bad), ConfigurationError, bad);
    }
    assert.throws(
      () => normalizeBaseUrl(`http://user:${API_KEY}@h/`),
      (err: unknown) => err instanceof ConfigurationError && !err.message.includes(API_KEY),
    );
    assert.throws(() => new Transport({ baseUrl: "http://h", apiKey: "" }), ConfigurationError);
    assert.throws(
      () => new Transport({ baseUrl: API_KEY, apiKey: API_KEY }),
      (err: unknown) => err instanceof ConfigurationError && !err.message.includes(API_KEY) && err.message.includes("[REDACTED]"),
    );
    assert.throws(
      () => new Transport({ baseUrl: "http://h", apiKey: `${API_KEY}\n` }),
      (err: unknown) => err instanceof ConfigurationError && !err.message.includes(API_KEY),
    );
    assert.throws(() => new Transport({ baseUrl: "http://h", apiKey: API_KEY, maxRetries: -1 }), InvalidArgumentError);
    assert.throws(() => new Transport({ baseUrl: "http://h", apiKey: API_KEY, timeoutMs: 0 }), InvalidArgumentError);
  });

  it("never lets defaultHeaders replace the API key, and sends per-call headers", async (t) => {
    const server = await serve(t, () => ({ body: FUTURE }));
    const { transport } = transportFor(server, { defaultHeaders: { "x-api-key": "other", "X-Extra": "1" } });
    await saveWeights(transport, { headers: { "X-Per-Call": "yes" } });
    assert.equal(server.requests[0]?.headers["x-api-key"], API_KEY);
    assert.equal(server.requests[0]?.headers["x-extra"], "1");
    assert.equal(server.requests[0]?.headers["x-per-call"], "yes");
  });
});

describe("retries", () => {
  for (const status of [500, 502, 503, 408, 429]) {
    it(`retries ${status} and then succeeds, re-sending the same body and idempotency key`, async (t) => {
      const server = await serve(t, [{ status, body: { detail: "transient" } }, { body: FUTURE }]);
      const { transport, delays } = transportFor(server);
      assert.deepEqual(await saveWeights(transport), FUTURE);

      assert.equal(server.requests.length, 2);
      const [first, second] = server.requests;
      assert.ok(first !== undefined && second !== undefined);
      assert.equal(first.headers["x-tinker-retry-count"], "0");
      assert.equal(second.headers["x-tinker-retry-count"], "1");
      assert.equal(first.headers["x-idempotency-key"], second.headers["x-idempotency-key"]);
      assert.equal(first.body, second.body);
      assert.equal((second.json() as { seq_id: number }).seq_id, 7);
      assert.deepEqual(delays, [500]);
    });
  }

  it("gives up after maxRetries with the status's error class, saying the request may have been applied", async (t) => {
    const server = await serve(t, () => ({ status: 503, body: { detail: "overloaded" } }));
    const { transport, delays } = transportFor(server, { maxRetries: 2 });
    const err = await rejectsWith(saveWeights(transport), InternalServerError);
    assert.equal(server.requests.length, 3);
    assert.equal(err.status, 503);
    assert.deepEqual(err.body, { detail: "overloaded" });
    assert.match(
      err.message,
      /^POST \/api\/v1\/save_weights failed with 503 Service Unavailable after 3 attempts over 2 s: overloaded\. The request may have been applied/,
    );
    assert.deepEqual(delays, [500, 1000]);
    assert.deepEqual(
      server.requests.map((r) => r.headers["x-tinker-retry-count"]),
      ["0", "1", "2"],
    );
    assert.equal(new Set(server.requests.map((r) => r.headers["x-idempotency-key"])).size, 1);
  });

  it("gives up on 429 with RateLimitError and on 408 with a plain APIError", async (t) => {
    const server = await serve(t, (req) => ({ status: req.path.endsWith("save_weights") ? 429 : 408 }));
    const { transport } = transportFor(server, { maxRetries: 1 });
    const rate = await rejectsWith(saveWeights(transport), RateLimitError);
    assert.equal(rate.status, 429);
    const timeout = await rejectsWith(getRun(transport, "r"), APIError);
    assert.equal(timeout.constructor, APIError);
    assert.equal(timeout.status, 408);
    assert.equal(server.requests.length, 4);
  });

  it("honours maxRetries per client and per request", async (t) => {
    const server = await serve(t, () => ({ status: 500 }));
    const { transport } = transportFor(server, { maxRetries: 4 });
    await rejectsWith(saveWeights(transport, { maxRetries: 0 }), InternalServerError);
    assert.equal(server.requests.length, 1);
    await rejectsWith(saveWeights(transport), InternalServerError);
    assert.equal(server.requests.length, 6);
  });

  it("keeps a caller-provided idempotency key on every attempt", async (t) => {
    const server = await serve(t, [{ status: 500 }, { status: 502 }, { body: FUTURE }]);
    const { transport } = transportFor(server);
    await saveWeights(transport, { idempotencyKey: "my-key-1" });
    assert.deepEqual(
      server.requests.map((r) => r.headers["x-idempotency-key"]),
      ["my-key-1", "my-key-1", "my-key-1"],
    );
  });

  it("uses a new idempotency key for each logical request", async (t) => {
    const server = await serve(t, () => ({ body: FUTURE }));
    const { transport } = transportFor(server);
    await saveWeights(transport);
    await saveWeights(transport);
    assert.notEqual(server.requests[0]?.headers["x-idempotency-key"], server.requests[1]?.headers["x-idempotency-key"]);
  });

  it("retries a reset connection and succeeds", async (t) => {
    const server = await serve(t, [{ destroy: true }, { destroy: true }, { body: FUTURE }]);
    const { transport, delays } = transportFor(server);
    assert.deepEqual(await saveWeights(transport), FUTURE);
    assert.equal(server.requests.length, 3);
    assert.equal(server.requests[0]?.body, server.requests[2]?.body);
    assert.deepEqual(delays, [500, 1000]);
  });

  it("throws APIConnectionError (with the cause) when every attempt is reset", async (t) => {
    const server = await serve(t, () => ({ destroy: true }));
    const { transport } = transportFor(server, { maxRetries: 2 });
    const err = await rejectsWith(saveWeights(transport), APIConnectionError);
    assert.ok(!(err instanceof APITimeoutError));
    assert.equal(server.requests.length, 3);
    assert.ok(err.cause !== undefined);
    assert.equal(err.attempts, 3);
    assert.match(err.message, /^POST \/api\/v1\/save_weights could not reach the server after 3 attempts: .+ Check the base URL/);
  });

  it("throws APIConnectionError when the port is closed", async () => {
    const server = await startScriptedServer([]);
    const url = server.url;
    await server.close();
    const { delays, sleep } = recordingSleep();
    const transport = new Transport({ baseUrl: url, apiKey: API_KEY, sleep, maxRetries: 1 });
    const err = await rejectsWith(saveWeights(transport), APIConnectionError);
    assert.match(err.message, /ECONNREFUSED/);
    assert.equal(delays.length, 1);
  });

  it("honours Retry-After seconds and retry-after-ms", async (t) => {
    const server = await serve(t, [
      { status: 503, headers: { "retry-after": "2" } },
      { status: 429, headers: { "retry-after-ms": "150" } },
      { body: FUTURE },
    ]);
    const { transport, delays } = transportFor(server);
    await saveWeights(transport);
    assert.deepEqual(delays, [2000, 150]);
  });

  it("honours an HTTP-date Retry-After, and ignores values over 60 s", async (t) => {
    const inFiveSeconds = new Date(Date.now() + 5_000).toUTCString();
    const server = await serve(t, [
      { status: 503, headers: { "retry-after": inFiveSeconds } },
      { status: 503, headers: { "retry-after": "120" } },
      { body: FUTURE },
    ]);
    const { transport, delays } = transportFor(server);
    await saveWeights(transport);
    assert.equal(delays.length, 2);
    assert.ok(delays[0]! > 3_000 && delays[0]! <= 5_000, `date-based delay ${delays[0]}`);
    assert.equal(delays[1], 1000, "an out-of-range Retry-After falls back to the exponential delay");
  });

  it("backs off exponentially from 0.5 s, capped at 30 s, with up to 25% jitter", () => {
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 6, 7].map((i) => retryDelayMs(i, undefined, () => 0)),
      [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000],
    );
    assert.equal(
      retryDelayMs(0, undefined, () => 1),
      375,
    );
    assert.equal(
      retryDelayMs(4, undefined, () => 0.5),
      7000,
    );
    assert.equal(
      retryDelayMs(0, new Headers({ "retry-after": "0" }), () => 0),
      0,
    );
    assert.equal(
      retryDelayMs(0, new Headers({ "retry-after": "-1" }), () => 0),
      500,
    );
  });

  it("honours x-should-retry", async (t) => {
    const server = await serve(t, [
      { status: 503, headers: { "x-should-retry": "false" } },
      { status: 400, headers: { "x-should-retry": "true" } },
      { body: FUTURE },
      { status: 409, headers: { "x-should-retry": "true" } },
    ]);
    const { transport } = transportFor(server);
    await rejectsWith(saveWeights(transport), InternalServerError);
    assert.equal(server.requests.length, 1);
    assert.deepEqual(await saveWeights(transport), FUTURE);
    assert.equal(server.requests.length, 3);
    await rejectsWith(saveWeights(transport), ConflictError);
    assert.equal(server.requests.length, 4, "a 409 is an answer, never retried");
  });

  for (const status of [400, 401, 403, 404, 409, 422]) {
    it(`does not retry ${status}`, async (t) => {
      const server = await serve(t, () => ({ status, body: { detail: "no" } }));
      const { transport, delays } = transportFor(server);
      const err = await rejectsWith(saveWeights(transport), APIError);
      assert.equal(err.status, status);
      assert.equal(server.requests.length, 1);
      assert.deepEqual(delays, []);
    });
  }

  it("follows a cross-origin 302 without the API key, and keeps the key off the rest of the chain", async (t) => {
    const third = await serve(t, () => ({ body: FUTURE }));
    const other = await serve(t, () => ({ status: 307, headers: { location: `${third.url}/final` } }));
    const server = await serve(t, () => ({ status: 302, headers: { location: `${other.url}/elsewhere?sig=abc` } }));
    const { transport } = transportFor(server);
    const future = await transport.call(
      "get_training_run",
      (init) => transport.api.GET("/api/v1/training_runs/{training_run_id}", { params: { path: { training_run_id: "r" } }, ...init }),
      z.unknown(),
    );
    assert.deepEqual(future, FUTURE);
    assert.equal(server.requests[0]?.headers["x-api-key"], API_KEY);
    assert.equal(other.requests.length, 1);
    assert.equal(other.requests[0]?.path, "/elsewhere");
    assert.equal(other.requests[0]?.headers["x-api-key"], undefined, "no key to the other host");
    assert.equal(third.requests[0]?.headers["x-api-key"], undefined, "nor further down the chain");
  });

  it("a redirect loop stops after 10 hops with an APIError naming the redirect", async (t) => {
    const server = await serve(t, () => ({ status: 302, headers: { location: "/api/v1/training_runs/loop?sig=abc" } }));
    const { transport } = transportFor(server);
    const err = await rejectsWith(getRun(transport, "loop"), APIError);
    assert.equal(err.status, 302);
    assert.match(
      err.message,
      /returned a 302 Found redirect to http:\/\/127\.0\.0\.1:\d+\/api\/v1\/training_runs\/loop, which was not followed/,
    );
    assert.ok(!err.message.includes("sig=abc"));
    assert.equal(server.requests.length, 11);
  });

  it("follows a same-origin redirect", async (t) => {
    const server = await serve(t, (req) =>
      req.path === "/api/v1/training_runs/old" ? { status: 307, headers: { location: "/api/v1/training_runs/new" } } : { body: { ok: 1 } },
    );
    const { transport } = transportFor(server);
    assert.deepEqual(await getRun(transport, "old"), { ok: 1 });
    assert.deepEqual(
      server.requests.map((r) => r.path),
      ["/api/v1/training_runs/old", "/api/v1/training_runs/new"],
    );
  });
});

describe("status → error class", () => {
  const cases: Array<[number, abstract new (...args: never[]) => APIError, string]> = [
    [400, BadRequestError, "BadRequestError"],
    [401, AuthenticationError, "AuthenticationError"],
    [402, APIError, "APIError"],
    [403, PermissionDeniedError, "PermissionDeniedError"],
    [404, NotFoundError, "NotFoundError"],
    [409, ConflictError, "ConflictError"],
    [410, APIError, "APIError"],
    [418, APIError, "APIError"],
    [422, UnprocessableEntityError, "UnprocessableEntityError"],
    [429, RateLimitError, "RateLimitError"],
    [500, InternalServerError, "InternalServerError"],
    [503, InternalServerError, "InternalServerError"],
    [504, InternalServerError, "InternalServerError"],
  ];
  for (const [status, cls, name] of cases) {
    it(`${status} → ${name}`, async (t) => {
      const server = await serve(t, () => ({ status, headers: { "x-request-id": "rid-9" }, body: { detail: `detail ${status}` } }));
      const { transport } = transportFor(server, { maxRetries: 0 });
      const err = await rejectsWith(saveWeights(transport), cls);
      assert.equal(err.constructor, cls);
      assert.equal(err.name, name);
      assert.ok(err instanceof TinkerError && err instanceof Error);
      assert.equal(err.status, status);
      assert.equal(err.requestId, "rid-9");
      assert.equal(err.method, "POST");
      assert.equal(err.url, `${server.url}/api/v1/save_weights`);
      assert.deepEqual(err.body, { detail: `detail ${status}` });
      assert.equal(err.headers.get("x-request-id"), "rid-9");
      assert.match(
        err.message,
        new RegExp(`^POST /api/v1/save_weights failed with ${status} .*: detail ${status} \\(request id rid-9\\)\\. \\S`),
      );
      assert.ok(String(err).startsWith(`${name}: POST /api/v1/save_weights`));
    });
  }

  it("409 says what to do next", async (t) => {
    const server = await serve(t, () => ({ status: 409, body: { detail: "checkpoint weights/ckpt-1 already exists" } }));
    const { transport } = transportFor(server);
    const err = await rejectsWith(saveWeights(transport), ConflictError);
    assert.equal(
      err.message,
      "POST /api/v1/save_weights failed with 409 Conflict: checkpoint weights/ckpt-1 already exists. The request conflicts with the server's current state (for example a checkpoint with that name already exists: choose another name or pass overwrite: true). It was not retried.",
    );
  });

  it("maps an empty-bodied 500 on response.ok, not on openapi-fetch's error", async (t) => {
    const server = await serve(t, () => ({ status: 500 }));
    const { transport } = transportFor(server, { maxRetries: 0 });
    const err = await rejectsWith(saveWeights(transport), InternalServerError);
    assert.equal(err.body, undefined);
    assert.match(err.message, /failed with 500 Internal Server Error \(empty body\)/);
  });

  it("reads a text error body and a request_id from a JSON body", async (t) => {
    const server = await serve(t, [
      { status: 400, body: "plain text problem", headers: { "content-type": "text/plain" } },
      { status: 404, body: { detail: "no run", request_id: "rid-body" } },
    ]);
    const { transport } = transportFor(server);
    const text = await rejectsWith(saveWeights(transport), BadRequestError);
    assert.equal(text.body, "plain text problem");
    assert.match(text.message, /: plain text problem\./);
    const json = await rejectsWith(getRun(transport, "r"), NotFoundError);
    assert.equal(json.requestId, "rid-body");
  });
});

describe("timeouts and aborts", () => {
  it("times out each attempt and then throws APITimeoutError", async (t) => {
    const server = await serve(t, () => ({ hang: true }));
    const { transport, delays } = transportFor(server, { timeoutMs: 100, maxRetries: 1 });
    const started = Date.now();
    const err = await rejectsWith(saveWeights(transport), APITimeoutError);
    assert.ok(err instanceof APIConnectionError);
    assert.equal(err.timeoutMs, 100);
    assert.equal(server.requests.length, 2);
    assert.equal(delays.length, 1);
    assert.match(err.message, /timed out after 100 ms/);
    assert.match(err.message, /server may still complete the work/);
    assert.ok(Date.now() - started < 5_000);
  });

  it("uses a per-call timeout", async (t) => {
    const server = await serve(t, [{ delayMs: 300, body: FUTURE }, { body: FUTURE }]);
    const { transport } = transportFor(server, { timeoutMs: 10_000 });
    assert.deepEqual(await saveWeights(transport, { timeoutMs: 50 }), FUTURE);
    assert.equal(server.requests.length, 2, "the slow first attempt timed out and was retried");
  });

  it("aborts a request in flight with APIUserAbortError", async (t) => {
    const server = await serve(t, () => ({ hang: true }));
    const { transport } = transportFor(server);
    const ac = new AbortController();
    const started = Date.now();
    setTimeout(() => ac.abort(), 50);
    const err = await rejectsWith(saveWeights(transport, { signal: ac.signal }), APIUserAbortError);
    assert.ok(Date.now() - started < 2_000);
    assert.equal(server.requests.length, 1);
    assert.match(err.message, /aborted by the caller/);
  });

  it("aborts during the backoff sleep", async (t) => {
    const server = await serve(t, () => ({ status: 503, headers: { "retry-after": "30" } }));
    const transport = new Transport({ baseUrl: server.url, apiKey: API_KEY }); // real, abortable sleep
    const ac = new AbortController();
    const started = Date.now();
    const pending = saveWeights(transport, { signal: ac.signal });
    while (server.requests.length === 0) await new Promise((r) => setTimeout(r, 5));
    setTimeout(() => ac.abort(), 50);
    await rejectsWith(pending, APIUserAbortError);
    assert.ok(Date.now() - started < 5_000, "the 30 s backoff was interrupted");
    assert.equal(server.requests.length, 1);
  });

  it("sends nothing when the signal is already aborted", async (t) => {
    const server = await serve(t, () => ({ body: FUTURE }));
    const { transport } = transportFor(server);
    await rejectsWith(saveWeights(transport, { signal: AbortSignal.abort() }), APIUserAbortError);
    assert.equal(server.requests.length, 0);
  });
});

describe("API key redaction", () => {
  function assertNoKey(err: unknown): void {
    assert.ok(err instanceof Error);
    const e = err as Error & { body?: unknown; headers?: Headers; url?: string };
    for (const text of [
      e.message,
      String(e),
      e.stack ?? "",
      JSON.stringify(e),
      JSON.stringify(e.body) ?? "",
      JSON.stringify([...(e.headers?.entries() ?? [])]),
      e.url ?? "",
    ]) {
      assert.ok(!text.includes(API_KEY), `the API key leaked into: ${text.slice(0, 300)}`);
    }
  }

  it("removes the key from messages, bodies and headers of an error response that echoes it", async (t) => {
    const server = await serve(t, (req) => ({
      status: 401,
      headers: { "x-echo": `bad key ${String(req.headers["x-api-key"])}` },
      body: { detail: `invalid API key ${String(req.headers["x-api-key"])}`, echo: { [API_KEY]: [API_KEY] } },
    }));
    const { transport } = transportFor(server);
    const err = await rejectsWith(saveWeights(transport), AuthenticationError);
    assertNoKey(err);
    assert.match(err.message, /invalid API key \[REDACTED\]/);
    assert.deepEqual(err.body, { detail: "invalid API key [REDACTED]", echo: { "[REDACTED]": ["[REDACTED]"] } });
    assert.equal(err.headers.get("x-echo"), "bad key [REDACTED]");
  });

  it("removes the key from a text body and a validation error's body", async (t) => {
    const server = await serve(t, [
      { status: 403, body: `key=${API_KEY} (${encodeURIComponent(API_KEY)})`, headers: { "content-type": "text/plain" } },
      { body: { request_id: 5, leaked: API_KEY } },
    ]);
    const { transport } = transportFor(server);
    const forbidden = await rejectsWith(saveWeights(transport), PermissionDeniedError);
    assertNoKey(forbidden);
    assert.equal(forbidden.body, "key=[REDACTED] ([REDACTED])");
    const invalid = await rejectsWith(saveWeights(transport), ResponseValidationError);
    assertNoKey(invalid);
  });

  it("keeps the key out of connection and timeout errors", async (t) => {
    const server = await serve(t, [{ destroy: true }, { hang: true }]);
    const { transport } = transportFor(server, { maxRetries: 0, timeoutMs: 50 });
    assertNoKey(await rejectsWith(saveWeights(transport), APIConnectionError));
    assertNoKey(await rejectsWith(saveWeights(transport), APITimeoutError));
  });
});

describe("response validation", () => {
  it("throws ResponseValidationError with a readable message when a 200 does not match the schema", async (t) => {
    const server = await serve(t, () => ({ body: { request_id: 42 } }));
    const { transport } = transportFor(server);
    const err = await rejectsWith(saveWeights(transport), ResponseValidationError);
    assert.equal(err.name, "ResponseValidationError");
    assert.match(err.message, /^save_weights: POST \/api\/v1\/save_weights returned a response that does not match the expected schema:/);
    assert.match(err.message, /request_id/);
    assert.match(err.message, /expected string, received number/);
    assert.deepEqual(err.body, { request_id: 42 });
    assert.equal(err.issues.length, 1);
    assert.deepEqual(err.issues[0]?.path, ["request_id"]);
    assert.equal(server.requests.length, 1, "a malformed 200 is not retried");
  });

  it("throws ResponseValidationError for a 200 that is not JSON", async (t) => {
    const server = await serve(t, () => ({ body: "<html>proxy page</html>", headers: { "content-type": "text/html" } }));
    const { transport } = transportFor(server);
    const err = await rejectsWith(saveWeights(transport), ResponseValidationError);
    assert.match(err.message, /not JSON \(content-type text\/html\)/);
    assert.equal(err.body, "<html>proxy page</html>");
    assert.deepEqual(err.issues, []);
  });

  it("accepts timestamps with Z and +00:00 offsets, and drops unknown fields", async (t) => {
    const checkpoint = {
      checkpoint_id: "weights/ckpt-1",
      checkpoint_type: "training",
      time: "2026-01-02T03:04:05.123456+00:00",
      tinker_path: "tinker://r/weights/ckpt-1",
      expires_at: "2026-02-02T03:04:05Z",
      future_field: 1,
    };
    const server = await serve(t, () => ({ body: checkpoint }));
    const { transport } = transportFor(server);
    const got = await transport.call(
      "get",
      (init) => transport.api.GET("/api/v1/training_runs/{training_run_id}", { params: { path: { training_run_id: "r" } }, ...init }),
      CheckpointSchema,
    );
    assert.equal(got.time, checkpoint.time);
    assert.ok(!("future_field" in got));
  });
});

describe("callRaw", () => {
  const archivePath = "/api/v1/training_runs/{training_run_id}/checkpoints/{checkpoint_kind}/{checkpoint_name}/archive" as const;

  it("returns a 302 unfollowed when asked (archive redirect), with its headers", async (t) => {
    const server = await serve(t, () => ({
      status: 302,
      headers: { location: "https://storage.example/archive.tar?sig=1", expires: "Wed, 21 Oct 2026 07:28:00 GMT" },
    }));
    const { transport } = transportFor(server);
    const res = await transport.callRaw(
      "get_checkpoint_archive_url",
      (init) =>
        transport.api.GET(archivePath, {
          params: { path: { training_run_id: "sess-0:train:0", checkpoint_kind: "weights", checkpoint_name: "ckpt 1" } },
          ...init,
        }),
      { okStatuses: [302], redirect: "manual" },
    );
    assert.equal(res.status, 302);
    assert.equal(res.headers.get("location"), "https://storage.example/archive.tar?sig=1");
    assert.equal(server.requests[0]?.path, "/api/v1/training_runs/sess-0:train:0/checkpoints/weights/ckpt%201/archive");
    assert.equal(server.requests[0]?.headers["accept"], "application/json");
  });

  it("returns a 2xx with its body unread, and a 204", async (t) => {
    const server = await serve(t, [{ body: { url: "u", expires: "2026-01-01T00:00:00Z" } }, { status: 204 }]);
    const { transport } = transportFor(server);
    const call = (): Promise<Response> =>
      transport.callRaw("archive", (init) =>
        transport.api.GET(archivePath, {
          params: { path: { training_run_id: "r", checkpoint_kind: "weights", checkpoint_name: "c" } },
          ...init,
        }),
      );
    const ok = await call();
    assert.deepEqual(await ok.json(), { url: "u", expires: "2026-01-01T00:00:00Z" });
    const empty = await call();
    assert.equal(empty.status, 204);
  });

  it("maps other statuses to errors (and still retries 5xx)", async (t) => {
    const server = await serve(t, [{ status: 503 }, { status: 404, body: { detail: "no such checkpoint" } }]);
    const { transport } = transportFor(server);
    const err = await rejectsWith(
      transport.callRaw("delete_checkpoint", (init) =>
        transport.api.DELETE("/api/v1/training_runs/{training_run_id}/checkpoints/{checkpoint_kind}/{checkpoint_name}", {
          params: { path: { training_run_id: "r", checkpoint_kind: "weights", checkpoint_name: "c" } },
          ...init,
        }),
      ),
      NotFoundError,
    );
    assert.match(
      err.message,
      /^DELETE \/api\/v1\/training_runs\/r\/checkpoints\/weights\/c failed with 404 Not Found after 2 attempts: no such checkpoint\./,
    );
    assert.equal(server.requests.length, 2);
    assert.equal(server.requests[0]?.headers["x-idempotency-key"], server.requests[1]?.headers["x-idempotency-key"]);
  });
});
