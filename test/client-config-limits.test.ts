/**
 * Client config fields that bound the client (PROTOCOL §10.3): `billing_exception_max_pause_duration_sec` (how
 * long 402s are waited out) and `sample_max_concurrent_requests` (a SamplingClient's default concurrency). The
 * ServiceClient reads the config once; every client built from it follows it.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { APIError, BadRequestError, RestClient, ServiceClient, startLocalServer } from "../src/index.js";
import { startScriptedServer } from "./helpers/http-server.js";
import { BASE_MODEL } from "./helpers/training.js";

/** Runs `fn`, which must reject with the 402 `APIError`; returns how long it took (ms). */
async function billingFailureAfter(fn: () => Promise<unknown>, secret: string): Promise<number> {
  const started = Date.now();
  await assert.rejects(fn(), (err: unknown) => {
    assert.ok(err instanceof APIError, `expected an APIError, got ${String(err)}`);
    assert.equal(err.status, 402);
    assert.ok(!err.message.includes(secret));
    return true;
  });
  return Date.now() - started;
}

test("billing_exception_max_pause_duration_sec 1: 402s fail after about 1 s, not 1 h", { timeout: 30_000 }, async () => {
  await using server = await startLocalServer({
    clientConfig: { billing_exception_max_pause_duration_sec: 1 },
    faults: [
      { path: "/api/v1/create_session", status: 402 },
      { path: "/api/v1/training_runs", status: 402 },
    ],
  });
  // A training client of the ServiceClient (its session creation answers 402).
  await using service = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey, logger: { warn: () => undefined } });
  const training = await billingFailureAfter(() => service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 }), server.apiKey);
  assert.ok(training >= 900 && training < 4_000, `create_session failed after ${training} ms`);
  const sessionTries = server.requests.filter((r) => r.path === "/api/v1/create_session").length;
  assert.ok(sessionTries >= 2 && sessionTries <= 3, `create_session was sent ${sessionTries} times`);

  // RestClient.fromEnv reads the config itself and follows it too.
  const rest = RestClient.fromEnv({ baseUrl: server.baseUrl, apiKey: server.apiKey }, {});
  const listing = await billingFailureAfter(() => rest.listTrainingRuns(), server.apiKey);
  assert.ok(listing >= 900 && listing < 4_000, `listTrainingRuns failed after ${listing} ms`);

  // Polling a future: the window applies once (not once in the transport and again in the poller).
  server.setFaults([{ path: "/api/v1/retrieve_future", status: 402 }]);
  await using polling = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey, logger: { warn: () => undefined } });
  const polled = await billingFailureAfter(() => polling.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 }), server.apiKey);
  assert.ok(polled >= 900 && polled < 3_000, `the poll of create_model failed after ${polled} ms`);
  // One pause of 1 s between two polls; a second window in the poller would poll a third time, after 2 s.
  assert.equal(server.requests.filter((r) => r.path === "/api/v1/retrieve_future").length, 2);
});

test("billing_exception_max_pause_duration_sec 0: a 402 is an error at once", { timeout: 30_000 }, async () => {
  await using server = await startLocalServer({
    clientConfig: { billing_exception_max_pause_duration_sec: 0 },
    faults: [{ path: "/api/v1/training_runs", status: 402 }],
  });
  await using service = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey, logger: { warn: () => undefined } });
  const ms = await billingFailureAfter(() => service.createRestClient().listTrainingRuns(), server.apiKey);
  assert.ok(ms < 1_000, `the 402 surfaced after ${ms} ms`);
  assert.equal(server.requests.filter((r) => r.path === "/api/v1/training_runs").length, 1);
});

/**
 * A server whose `/asample` holds each request (150 ms, or until `hold()` settles) and then refuses it (400),
 * recording how many were held at once. `config` is what `/api/v1/client/config` answers.
 */
async function samplingServer(config: Record<string, unknown>, hold: () => Promise<unknown> = () => sleep(150)) {
  let inFlight = 0;
  let maxInFlight = 0;
  let samples = 0;
  const server = await startScriptedServer(async (req) => {
    switch (req.path) {
      case "/api/v1/client/config":
        return { body: config };
      case "/api/v1/create_session":
        return { body: { session_id: "sess-1", type: "create_session" } };
      case "/api/v1/session_heartbeat":
        return { body: { type: "session_heartbeat" } };
      case "/api/v1/create_sampling_session":
        return { body: { sampling_session_id: "sess-1:sample:0", type: "create_sampling_session" } };
      case "/api/v1/asample": {
        samples++;
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await hold();
        inFlight--;
        return { status: 400, body: { detail: "refused by the test server" } };
      }
      default:
        return { status: 404, body: { detail: `no ${req.path}` } };
    }
  });
  return {
    server,
    get maxInFlight() {
      return maxInFlight;
    },
    get inFlight() {
      return inFlight;
    },
    get samples() {
      return samples;
    },
  };
}

/** Sends `n` samples at once through a new ServiceClient and waits for all of them to fail (400). */
async function sampleBurst(url: string, n: number, maxConcurrentRequests?: number): Promise<number> {
  await using service = new ServiceClient({ baseUrl: url, apiKey: "tml-test", logger: { warn: () => undefined } });
  const sampler = await service.createSamplingClient({
    baseModel: BASE_MODEL,
    ...(maxConcurrentRequests === undefined ? {} : { maxConcurrentRequests }),
  });
  const results = await Promise.allSettled(Array.from({ length: n }, () => sampler.sample([1, 2, 3], 1, { max_tokens: 2 }).result()));
  for (const r of results) assert.ok(r.status === "rejected" && r.reason instanceof BadRequestError, String(r.status));
  return sampler.maxConcurrentRequests;
}

test("sample_max_concurrent_requests sets a SamplingClient's default concurrency; maxConcurrentRequests overrides it", async () => {
  const limited = await samplingServer({ sample_max_concurrent_requests: 2 });
  try {
    assert.equal(await sampleBurst(limited.server.url, 6), 2);
    assert.equal(limited.samples, 6);
    assert.equal(limited.maxInFlight, 2, `${limited.maxInFlight} sample requests were in flight at once`);
  } finally {
    await limited.server.close();
  }

  // The caller's own limit wins over the config's.
  const overridden = await samplingServer({ sample_max_concurrent_requests: 2 });
  try {
    assert.equal(await sampleBurst(overridden.server.url, 6, 3), 3);
    assert.equal(overridden.maxInFlight, 3);
  } finally {
    await overridden.server.close();
  }

  // Without the field, the service's default (2000) applies: all 6 at once.
  const open = await samplingServer({});
  try {
    assert.equal(await sampleBurst(open.server.url, 6), 2000);
    assert.equal(open.maxInFlight, 6);
  } finally {
    await open.server.close();
  }
});

test("saveWeightsAndGetSamplingClient follows sample_max_concurrent_requests too", async () => {
  await using server = await startLocalServer({ clientConfig: { sample_max_concurrent_requests: 3 } });
  await using service = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey });
  const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
  assert.equal((await training.saveWeightsAndGetSamplingClient()).maxConcurrentRequests, 3);
  assert.equal((await training.saveWeightsAndGetSamplingClient({ maxConcurrentRequests: 7 })).maxConcurrentRequests, 7);
});

test("whatever the concurrency, at most 400 sample submits are on the wire at once (as the Python SDK's submit cap)", {
  timeout: 60_000,
}, async () => {
  // The config's default (2000) lets 450 samples run at once, but their submits queue behind 400 open POSTs. The
  // server holds every submit until the test has seen how many arrive: 400 (within 20 s), and no more in 500 ms.
  let release!: () => void;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const open = await samplingServer({}, () => gate);
  try {
    const burst = sampleBurst(open.server.url, 450);
    for (let i = 0; i < 400 && open.inFlight < 400; i++) await sleep(50);
    await sleep(500);
    const held = open.inFlight;
    release();
    assert.equal(await burst, 2000);
    assert.equal(held, 400, `${held} sample submits were in flight at once`);
    assert.equal(open.maxInFlight, 400);
    assert.equal(open.samples, 450);
  } finally {
    release();
    await open.server.close();
  }
});
