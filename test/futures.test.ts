/**
 * Future polling against a scripted node:http server: every outcome of retrieve_future, and how the poller
 * waits (or does not) between polls.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  APIConnectionError,
  NotFoundError,
  PromiseExpiredError,
  RequestFailedError,
  ResponseValidationError,
  ServiceClient,
  type QueueStateChange,
} from "../src/index.js";
import { startScriptedServer, type ScriptedReply, type RecordedRequest } from "./helpers/http-server.js";

const KEY = "tml-test-key-0123456789";

/**
 * A minimal Tinker server: session, create_model (done at once), and one optim_step whose polls are answered
 * by `pollReplies` in order.
 */
async function scripted(pollReplies: ScriptedReply[], extra: { retryBudgetMs?: number; session?: Record<string, unknown> } = {}) {
  let polls = 0;
  const server = await startScriptedServer((req: RecordedRequest): ScriptedReply => {
    const body = req.body === "" ? {} : (req.json() as Record<string, unknown>);
    switch (req.path) {
      case "/api/v1/client/config":
        return { body: {} };
      case "/api/v1/create_session":
        return { body: { session_id: "sess-1", type: "create_session", ...extra.session } };
      case "/api/v1/create_model":
        return { body: { request_id: "req-create", model_id: "sess-1:train:0" } };
      case "/api/v1/optim_step":
      case "/api/v1/save_weights_for_sampler":
        return { body: { request_id: "req-op", model_id: "sess-1:train:0" } };
      case "/api/v1/session_heartbeat":
        return { body: {} };
      case "/api/v1/retrieve_future":
        if (body["request_id"] === "req-create") return { body: { model_id: "sess-1:train:0", type: "create_model" } };
        return pollReplies[polls++] ?? { status: 500, body: { detail: "script ran out" } };
      default:
        return { status: 404, body: { detail: "no route" } };
    }
  });
  const sleeps: number[] = [];
  const changes: QueueStateChange[] = [];
  const warnings: string[] = [];
  let clock = 0; // fake time: each sleep moves it forward, so retry budgets run at once
  const service = new ServiceClient({
    baseUrl: server.url,
    apiKey: KEY,
    ...(extra.retryBudgetMs === undefined ? {} : { retryBudgetMs: extra.retryBudgetMs }),
    now: () => clock,
    sleep: async (ms) => {
      sleeps.push(ms);
      clock += ms;
    },
    onQueueStateChange: (c) => changes.push(c),
    logger: { warn: (m) => warnings.push(m) },
  });
  const training = await service.createLoraTrainingClient({ baseModel: "Qwen/Qwen3-8B", rank: 4 });
  const opPolls = () =>
    server.requests.filter((r) => r.path === "/api/v1/retrieve_future" && (r.json() as { request_id: string }).request_id === "req-op");
  return {
    server,
    service,
    training,
    sleeps,
    changes,
    warnings,
    opPolls,
    async close() {
      await service.close();
      await server.close();
    },
  };
}

const tryAgain = (queue_state = "active", reason?: string): ScriptedReply => ({
  body: { type: "try_again", request_id: "req-op", queue_state, ...(reason === undefined ? {} : { queue_state_reason: reason }) },
});

test("try_again and 408 re-poll at once, without sleeping, and report queue-state changes", async () => {
  const s = await scripted([
    tryAgain("active"),
    tryAgain("paused_capacity"),
    { status: 408, body: { type: "try_again", request_id: "req-op", queue_state: "paused_rate_limit" } },
    tryAgain("active"),
    { body: { metrics: { step: 1 } } },
  ]);
  try {
    const out = await s.training.optimStep({ learning_rate: 1e-3 });
    assert.deepEqual(out, { metrics: { step: 1 } });
    assert.equal(s.opPolls().length, 5);
    assert.deepEqual(s.sleeps, [], "no fixed sleep between polls");
    assert.deepEqual(
      s.changes.map((c) => c.queueState),
      ["active", "paused_capacity", "paused_rate_limit", "active"],
    );
    assert.ok(
      s.warnings.some((w) => /paused: capacity \(Tinker backend is running short on capacity/.test(w)),
      s.warnings.join("\n"),
    );
    assert.ok(s.warnings.some((w) => /paused: rate limit/.test(w)));
    // Every poll asks about the same request.
    assert.ok(s.opPolls().every((r) => (r.json() as { request_id: string }).request_id === "req-op"));
  } finally {
    await s.close();
  }
});

test("429 and connection errors back off exponentially; 5xx re-polls after a small floor", async () => {
  const s = await scripted([
    { status: 429, body: { detail: "slow down" } },
    { status: 429, body: { detail: "slow down" } },
    { destroy: true },
    { status: 503, body: { detail: "busy" } },
    { body: { metrics: { step: 1 } } },
  ]);
  try {
    await s.training.optimStep({ learning_rate: 1e-3 });
    assert.equal(s.sleeps.length, 4, `sleeps: ${s.sleeps.join(", ")}`);
    const [a, b, c, floor] = s.sleeps as [number, number, number, number];
    assert.ok(a >= 375 && a <= 500, `first backoff ${a}`);
    assert.ok(b >= 750 && b <= 1000, `second backoff ${b}`);
    assert.ok(c >= 1500 && c <= 2000, `third backoff ${c}`);
    assert.ok(floor > 0 && floor <= 100, `5xx floor ${floor}`);
  } finally {
    await s.close();
  }
});

test("a failed result becomes RequestFailedError with its category", async () => {
  const s = await scripted([{ body: { error: "tokens out of range", category: "user" } }]);
  try {
    const err = await s.training.optimStep({ learning_rate: 1e-3 }).then(
      () => assert.fail("expected failure"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof RequestFailedError);
    assert.equal(err.category, "user");
    assert.equal(err.requestId, "req-op");
    assert.match(err.message, /tokens out of range/);
  } finally {
    await s.close();
  }
});

test("410 ends the future with PromiseExpiredError telling the user to resubmit", async () => {
  const s = await scripted([{ status: 410, body: { detail: "promise expired" } }]);
  try {
    const err = await s.training.optimStep({ learning_rate: 1e-3 }).then(
      () => assert.fail("expected failure"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof PromiseExpiredError, String(err));
    assert.match(err.message, /resubmit/);
    assert.equal(s.opPolls().length, 1, "410 is terminal");
  } finally {
    await s.close();
  }
});

test("a 404 on poll is fatal; a result that does not match the schema is a validation error", async () => {
  const s = await scripted([{ status: 404, body: { detail: "unknown request id" } }]);
  try {
    await assert.rejects(s.training.optimStep({ learning_rate: 1e-3 }).result(), /404/);
  } finally {
    await s.close();
  }
  const t = await scripted([{ body: { metrics: { step: "one" } } }]);
  try {
    await assert.rejects(
      t.training.optimStep({ learning_rate: 1e-3 }).result(),
      (e: unknown) => e instanceof Error && e.name === "ResponseValidationError",
    );
  } finally {
    await t.close();
  }
});

test("a named sampler save that completes without a path is a validation error, not a result", async () => {
  const s = await scripted([{ body: { sampling_session_id: "sess-1:sample:0", type: "save_weights_for_sampler" } }]);
  try {
    await assert.rejects(
      s.training.saveWeightsForSampler("final").result(),
      (e: unknown) => e instanceof Error && e.name === "ResponseValidationError" && /path/.test(e.message),
    );
  } finally {
    await s.close();
  }
});

test("connection failures in a row end a poll only after the retry budget (decision 4)", async () => {
  // 12 dropped polls (about 210 s of backoff) fit in the default 300 s budget: the result still arrives.
  const s = await scripted([...Array.from({ length: 12 }, () => ({ destroy: true })), { body: { metrics: { step: 1 } } }]);
  try {
    assert.deepEqual(await s.training.optimStep({ learning_rate: 1e-3 }), { metrics: { step: 1 } });
    assert.equal(s.opPolls().length, 13);
  } finally {
    await s.close();
  }
});

test("drops, an answered poll, more drops, then the result: it resolves (an answer resets the run)", async () => {
  // With a 10 s budget, each run of 5 drops lasts 7.5 s; the two runs together would exceed it.
  const drops = (n: number): ScriptedReply[] => Array.from({ length: n }, () => ({ destroy: true }));
  const s = await scripted([...drops(5), tryAgain("active"), ...drops(5), { body: { metrics: { step: 1 } } }], { retryBudgetMs: 10_000 });
  try {
    assert.deepEqual(await s.training.optimStep({ learning_rate: 1e-3 }), { metrics: { step: 1 } });
    assert.equal(s.opPolls().length, 12);
  } finally {
    await s.close();
  }
});

test("a 402 on a poll pauses 5 s and polls again", async () => {
  const s = await scripted([{ status: 402, body: { detail: "billing" } }, { status: 402 }, { body: { metrics: { step: 1 } } }]);
  try {
    assert.deepEqual(await s.training.optimStep({ learning_rate: 1e-3 }), { metrics: { step: 1 } });
    assert.deepEqual(s.sleeps, [5000, 5000]);
  } finally {
    await s.close();
  }
});

test("the poller gives up after connection failures lasting the retry budget, with a clear error", async () => {
  const s = await scripted(
    Array.from({ length: 200 }, () => ({ destroy: true })),
    { retryBudgetMs: 60_000 },
  );
  try {
    const err = await s.training.optimStep({ learning_rate: 1e-3 }).then(
      () => assert.fail("expected failure"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof APIConnectionError, String(err));
    assert.match(err.message, /may still complete/);
    assert.ok(!err.message.includes(KEY));
    const capped = s.sleeps.filter((ms) => ms > 30_000);
    assert.deepEqual(capped, [], "backoff is capped at 30 s");
    const total = s.sleeps.reduce((a, b) => a + b, 0);
    assert.ok(total <= 60_000 && total >= 59_000, `slept ${total} ms of the 60 s budget`);
  } finally {
    await s.close();
  }
});

test("closing the service client stops polling", async () => {
  const s = await scripted(Array.from({ length: 10_000 }, () => tryAgain("active")));
  try {
    const fut = s.training.optimStep({ learning_rate: 1e-3 });
    await new Promise((r) => setTimeout(r, 30));
    await s.service.close();
    await assert.rejects(Promise.resolve(fut), /closed/);
  } finally {
    await s.server.close();
  }
});

test("a 200 poll answer that is not JSON ends the future with ResponseValidationError, without re-polling", async () => {
  const s = await scripted([{ body: "<html>proxy page</html>", headers: { "content-type": "text/html" } }]);
  try {
    const err = await s.training.optimStep({ learning_rate: 1e-3 }).then(
      () => assert.fail("expected failure"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ResponseValidationError, String(err));
    assert.match(err.message, /retrieve_future body is not JSON/);
    assert.equal(err.body, "<html>proxy page</html>");
    assert.equal(s.opPolls().length, 1);
  } finally {
    await s.close();
  }
});

test("a 404 poll answer ends the future with NotFoundError naming retrieve_future", async () => {
  const s = await scripted([{ status: 404, body: { detail: "unknown request" } }]);
  try {
    const err = await s.training.optimStep({ learning_rate: 1e-3 }).then(
      () => assert.fail("expected failure"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof NotFoundError, String(err));
    assert.equal(err.status, 404);
    assert.match(err.message, /POST \/api\/v1\/retrieve_future failed with 404 Not Found: unknown request/);
    assert.equal(s.opPolls().length, 1);
  } finally {
    await s.close();
  }
});

test("the API key never reaches a log line or error: queue_state_reason, RequestFailedError, create_session messages", async () => {
  const s = await scripted(
    [
      tryAgain("paused_capacity", `quota of ${KEY} exhausted`),
      { body: { error: `bad request from key ${KEY} (${encodeURIComponent(KEY)})`, category: "user" } },
    ],
    { session: { warning_message: `key ${KEY} expires soon`, error_message: `key ${KEY} is deprecated` } },
  );
  try {
    const err = await s.training.optimStep({ learning_rate: 1e-3 }).then(
      () => assert.fail("expected failure"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof RequestFailedError);
    assert.match(err.message, /bad request from key \[REDACTED\]/);
    assert.equal(err.detail, "bad request from key [REDACTED] ([REDACTED])");
    for (const text of [err.message, err.detail, String(err.stack), ...s.warnings, ...s.changes.map((c) => c.reason ?? "")]) {
      assert.ok(!text.includes(KEY), `the key leaked into: ${text}`);
    }
    assert.ok(
      s.warnings.some((w) => /key \[REDACTED\] expires soon/.test(w)),
      s.warnings.join("\n"),
    );
    assert.ok(s.warnings.some((w) => /key \[REDACTED\] is deprecated/.test(w)));
    assert.ok(
      s.warnings.some((w) => /paused: capacity \(quota of \[REDACTED\] exhausted\)/.test(w)),
      s.warnings.join("\n"),
    );
  } finally {
    await s.close();
  }
});
