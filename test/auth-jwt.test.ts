/**
 * JWT mode end to end (PROTOCOL §2.1, §10.5): the local server in `pjwt_auth_enabled` mode issues short-lived
 * signed JWTs; the client exchanges its key, sends the JWT, refreshes it as it expires, and never sends the key
 * where a JWT is wanted. Plus the refresh rules of ClientAuth on their own.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { AuthenticationError, RestClient, ServiceClient, startLocalServer, TinkerError } from "../src/index.js";
import { ClientAuth } from "../src/internal/auth.js";
import { BASE_MODEL, trainSteps } from "./helpers/training.js";

function jwtWith(claims: Record<string, unknown>): string {
  const b = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
  return `${b({ alg: "none" })}.${b(claims)}.sig`;
}

test("JWT mode: the client trains across several token expiries, sending only fresh JWTs after the exchange", async () => {
  await using server = await startLocalServer({ clientConfig: { pjwt_auth_enabled: true }, jwtLifetimeSeconds: 1.2 });
  const warnings: string[] = [];
  await using service = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey, logger: { warn: (m) => warnings.push(m) } });
  const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
  const losses: number[] = [];
  for (let i = 0; i < 3; i++) {
    losses.push(...(await trainSteps(training, i, 1)));
    await sleep(1_300); // the token in hand has expired by now
  }
  await training.saveState("after-expiry");
  assert.equal(losses.length, 3);
  const reqs = server.requests.filter((r) => r.path.startsWith("/api/v1/"));
  const exchanges = reqs.filter((r) => r.path === "/api/v1/auth/token");
  assert.ok(exchanges.length >= 3, `expected a new JWT after each expiry, saw ${exchanges.length} exchanges`);
  for (const r of exchanges) assert.equal(r.headers["x-api-key"], server.apiKey);
  const config = reqs.find((r) => r.path === "/api/v1/client/config");
  assert.equal(config?.headers["x-api-key"], server.apiKey);
  const others = reqs.filter((r) => r.path !== "/api/v1/auth/token" && r.path !== "/api/v1/client/config");
  assert.ok(others.length > 5);
  for (const r of others) {
    const key = String(r.headers["x-api-key"]);
    assert.ok(key.startsWith("eyJ"), `${r.path} was sent with ${key === server.apiKey ? "the API key" : "no JWT"}`);
  }
  // The first request of all is the client config, read with the key before anything else.
  assert.equal(reqs[0]?.path, "/api/v1/client/config");
  assert.deepEqual(warnings, []);
});

test("JWT mode server: the key works only for the config and the exchange; expired and forged JWTs get 401", async () => {
  await using server = await startLocalServer({ clientConfig: { pjwt_auth_enabled: true }, jwtLifetimeSeconds: 0.5 });
  const post = (path: string, key: string, body: unknown = {}) =>
    fetch(`${server.baseUrl}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": key },
      body: JSON.stringify(body),
    });
  const get = (path: string, key: string) => fetch(`${server.baseUrl}${path}`, { headers: { "x-api-key": key } });

  assert.equal((await post("/api/v1/client/config", server.apiKey, { sdk_version: "0" })).status, 200);
  const issued = await post("/api/v1/auth/token", server.apiKey);
  assert.equal(issued.status, 200);
  const { jwt } = (await issued.json()) as { jwt: string };
  const [head, payload] = jwt.split(".") as [string, string, string];
  const claims = JSON.parse(Buffer.from(payload, "base64url").toString()) as { sub: string; email: string; exp: number };
  assert.equal(typeof claims.sub, "string");
  assert.match(claims.email, /@/);
  assert.ok(claims.exp * 1000 > Date.now() && claims.exp * 1000 <= Date.now() + 600);

  assert.equal((await get("/api/v1/training_runs", jwt)).status, 200);
  const withKey = await get("/api/v1/training_runs", server.apiKey);
  assert.equal(withKey.status, 401);
  assert.match(((await withKey.json()) as { detail: string }).detail, /auth\/token/);

  // Forged: the same header and signature over claims that name another user.
  const forgedClaims = Buffer.from(JSON.stringify({ ...claims, sub: `${claims.sub}x` })).toString("base64url");
  assert.equal((await get("/api/v1/training_runs", `${head}.${forgedClaims}.${jwt.split(".")[2]}`)).status, 401);
  assert.equal((await get("/api/v1/training_runs", `${jwt}x`)).status, 401);
  await sleep(600);
  const expired = await get("/api/v1/training_runs", jwt);
  assert.equal(expired.status, 401);
  assert.match(((await expired.json()) as { detail: string }).detail, /expired/);

  // A client that never exchanges (a REST client bound to a plain transport) is refused with the reason.
  const { Transport } = await import("../src/internal/transport.js");
  const plain = new RestClient(new Transport({ baseUrl: server.baseUrl, apiKey: server.apiKey }));
  await assert.rejects(plain.listTrainingRuns(), (err: unknown) => err instanceof AuthenticationError && /JWT/.test(err.message));
  // ...while fromEnv follows the mode.
  await using rest = RestClient.fromEnv({ baseUrl: server.baseUrl, apiKey: server.apiKey }, {});
  assert.ok(Array.isArray((await rest.listTrainingRuns()).training_runs));
});

test("whoami decodes sub and email of the JWT in use, and says why when there is none", async () => {
  await using server = await startLocalServer({ clientConfig: { pjwt_auth_enabled: true } });
  await using rest = RestClient.fromEnv({ baseUrl: server.baseUrl, apiKey: server.apiKey }, {});
  const me = await rest.whoami();
  assert.match(me.user_urn, /^urn:tinker-local:user:user-[0-9a-f]{16}$/);
  assert.match(me.email ?? "", /^user-[0-9a-f]{16}@local\.tinker$/);
  const before = server.requests.length;
  await rest.whoami();
  assert.equal(server.requests.length, before, "a second whoami sends nothing");

  await using plainServer = await startLocalServer();
  await using plain = RestClient.fromEnv({ baseUrl: plainServer.baseUrl, apiKey: plainServer.apiKey }, {});
  await assert.rejects(
    plain.whoami(),
    (err: unknown) => err instanceof TinkerError && /JWT/.test(err.message) && !err.message.includes(plainServer.apiKey),
  );
});

test("ClientAuth: refreshes on demand near exp, in the background before exp, and keeps the stale token when a refresh fails", async () => {
  let now = 1_000_000_000_000;
  let issued = 0;
  let fail = false;
  const warnings: string[] = [];
  const secrets: string[] = [];
  const auth = new ClientAuth({
    apiKey: "tml-test-key",
    secrets,
    now: () => now,
    logger: { warn: (m) => warnings.push(m) },
    loadMode: async () => ({ jwt: true, credentialSource: "api_key" }),
    exchange: async () => {
      if (fail) throw new Error("exchange refused");
      issued++;
      return jwtWith({ sub: "u", exp: now / 1000 + 3600, n: issued });
    },
  });
  try {
    assert.equal(await auth.credentialFor("/api/v1/auth/token"), "tml-test-key");
    assert.equal(await auth.credentialFor("/prefix/api/v1/client/config"), "tml-test-key");
    const first = await auth.credentialFor("/api/v1/training_runs");
    assert.equal(issued, 1);
    assert.ok(secrets.includes(first), "each token is added to the redaction list");
    now += 3_000_000; // 600 s left: > 60 s, no refresh
    assert.equal(await auth.credentialFor("/api/v1/x"), first);
    now += 550_000; // 50 s left: refresh on demand
    const second = await auth.credentialFor("/api/v1/x");
    assert.notEqual(second, first);
    assert.equal(issued, 2);
    now += 3_560_000; // 40 s left on the second token, and the exchange fails: keep it, warn without the token
    fail = true;
    assert.equal(await auth.credentialFor("/api/v1/x"), second);
    assert.equal(warnings.length, 1);
    assert.ok(!warnings[0]!.includes(second));
  } finally {
    auth.close();
  }

  // Background: a token of 400 ms is replaced after about half its lifetime without any request.
  let count = 0;
  const bg = new ClientAuth({
    apiKey: "tml-test-key",
    secrets: [],
    loadMode: async () => ({ jwt: true, credentialSource: "api_key" }),
    exchange: async () => {
      count++;
      return jwtWith({ sub: "u", exp: Date.now() / 1000 + 0.4 });
    },
  });
  try {
    await bg.credentialFor("/api/v1/x");
    assert.equal(count, 1);
    await sleep(700);
    assert.ok(count >= 2, `the background refresh ran ${count - 1} times`);
  } finally {
    bg.close();
  }
});

const EXIT_CHILD = fileURLToPath(new URL("./helpers/jwt-exit-child.ts", import.meta.url));

/** Runs the JWT-mode script of helpers/jwt-exit-child.ts; resolves with its exit code and ms from `called` to exit. */
function runExitChild(server: { baseUrl: string; apiKey: string }, workMs: number, onCalled: () => void) {
  return new Promise<{ code: number | null; afterCallMs: number; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", EXIT_CHILD, String(workMs)], {
      env: { ...process.env, TINKER_BASE_URL: server.baseUrl, TINKER_API_KEY: server.apiKey },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let calledAt: number | undefined;
    const killer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString();
      if (calledAt === undefined && stdout.includes("called")) {
        calledAt = Date.now();
        onCalled();
      }
    });
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(killer);
      resolve({ code, afterCallMs: Date.now() - (calledAt ?? Date.now()), stdout, stderr });
    });
  });
}

test("a script in JWT mode exits by itself without close(), even when a background refresh fails after its last call", async () => {
  // Server up: one call, then the script ends.
  {
    await using server = await startLocalServer({ clientConfig: { pjwt_auth_enabled: true } });
    const run = await runExitChild(server, 0, () => undefined);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /called 0\ndone/);
    assert.ok(run.afterCallMs < 5_000, `the script took ${run.afterCallMs} ms to exit after its call`);
  }
  // Tokens of 2 s are refreshed in the background after 1 s; the service goes away right after the call, so that
  // refresh fails while the script still works locally (2 s). The script must still exit when its work is done.
  const server = await startLocalServer({ clientConfig: { pjwt_auth_enabled: true }, jwtLifetimeSeconds: 2 });
  let closing: Promise<void> | undefined;
  const run = await runExitChild(server, 2_000, () => {
    closing = server.close();
  });
  await closing;
  await server.close();
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /done/);
  assert.ok(run.afterCallMs < 8_000, `the script took ${run.afterCallMs} ms to exit after its call (2 000 ms of work)`);
  assert.ok(!run.stderr.includes(server.apiKey));
});

test("JWT mode: a 401 (token revoked or expired early) forces one refresh and one resend with the same idempotency key", async () => {
  let skewMs = 0;
  await using server = await startLocalServer({ clientConfig: { pjwt_auth_enabled: true }, clock: () => Date.now() + skewMs });
  const lines: string[] = [];
  await using service = new ServiceClient({
    baseUrl: server.baseUrl,
    apiKey: server.apiKey,
    logger: { warn: (m) => lines.push(m), debug: (m) => lines.push(m), info: (m) => lines.push(m), error: (m) => lines.push(m) },
    logLevel: "debug",
  });
  const rest = service.createRestClient();
  await rest.listTrainingRuns();
  // The server's clock jumps 2 h: the token the client holds (1 h, by its own clock still fresh) is now expired.
  skewMs = 2 * 3_600_000;
  const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
  assert.equal((await trainSteps(training, 0, 1)).length, 1);

  const reqs = server.requests.filter((r) => r.path.startsWith("/api/v1/"));
  const sessions = reqs.filter((r) => r.path === "/api/v1/create_session");
  assert.equal(sessions.length, 2, "create_session: the rejected attempt and one resend");
  const [rejected, resent] = sessions as [(typeof sessions)[0], (typeof sessions)[0]];
  assert.equal(resent.headers["x-idempotency-key"], rejected.headers["x-idempotency-key"], "the resend keeps the idempotency key");
  assert.notEqual(resent.headers["x-api-key"], rejected.headers["x-api-key"], "the resend carries a new token");
  assert.deepEqual(resent.body, rejected.body);
  const exchanges = reqs.filter((r) => r.path === "/api/v1/auth/token");
  assert.equal(exchanges.length, 2, "one exchange at the start, one forced by the 401");
  assert.ok(reqs.indexOf(exchanges[1]!) > reqs.indexOf(rejected) && reqs.indexOf(exchanges[1]!) < reqs.indexOf(resent));

  assert.ok(
    lines.some((l) => /create_session: 401 Unauthorized; refreshed the auth token/.test(l)),
    "a debug line says what happened",
  );
  const tokens = new Set(reqs.map((r) => String(r.headers["x-api-key"])).filter((k) => k.startsWith("eyJ")));
  assert.ok(tokens.size >= 2);
  for (const line of lines)
    for (const t of [...tokens, server.apiKey]) assert.ok(!line.includes(t), `a log line holds a credential: ${line}`);
});

test("JWT mode: a 401 that persists after the refresh surfaces as AuthenticationError (one resend, no loop, no token in it)", async () => {
  await using server = await startLocalServer({
    clientConfig: { pjwt_auth_enabled: true },
    faults: [{ path: "/api/v1/training_runs", status: 401 }],
  });
  const lines: string[] = [];
  await using service = new ServiceClient({
    baseUrl: server.baseUrl,
    apiKey: server.apiKey,
    logger: { warn: (m) => lines.push(m), debug: (m) => lines.push(m), info: (m) => lines.push(m), error: (m) => lines.push(m) },
    logLevel: "debug",
  });
  const err = await service
    .createRestClient()
    .listTrainingRuns()
    .then(
      () => assert.fail("expected a 401"),
      (e: unknown) => e,
    );
  assert.ok(err instanceof AuthenticationError, String(err));
  const reqs = server.requests.filter((r) => r.path.startsWith("/api/v1/"));
  assert.equal(reqs.filter((r) => r.path === "/api/v1/training_runs").length, 2);
  assert.equal(reqs.filter((r) => r.path === "/api/v1/auth/token").length, 2);
  const tokens = reqs.map((r) => String(r.headers["x-api-key"])).filter((k) => k.startsWith("eyJ"));
  for (const t of [...tokens, server.apiKey]) {
    assert.ok(!err.message.includes(t) && !String(err.stack).includes(t) && !JSON.stringify(err.body).includes(t));
    for (const line of lines) assert.ok(!line.includes(t), `a log line holds a credential: ${line}`);
  }

  // Without JWT mode there is nothing to refresh: the 401 surfaces after one request.
  await using plain = await startLocalServer({ faults: [{ path: "/api/v1/training_runs", status: 401 }] });
  await using plainService = new ServiceClient({ baseUrl: plain.baseUrl, apiKey: plain.apiKey });
  await assert.rejects(plainService.createRestClient().listTrainingRuns(), AuthenticationError);
  assert.equal(plain.requests.filter((r) => r.path === "/api/v1/training_runs").length, 1);
});

test("ClientAuth.renewAfterRejection: concurrent 401s share one exchange; only JWT mode and API routes renew", async () => {
  let issued = 0;
  const make = (jwt: boolean) =>
    new ClientAuth({
      apiKey: "tml-test-key",
      secrets: [],
      loadMode: async () => ({ jwt, credentialSource: "api_key" }),
      exchange: async () => {
        issued++;
        await sleep(20);
        return jwtWith({ sub: "u", exp: Date.now() / 1000 + 3600, n: issued });
      },
    });
  const auth = make(true);
  try {
    const first = await auth.credentialFor("/api/v1/x");
    const renewed = await Promise.all([1, 2, 3].map(() => auth.renewAfterRejection("/api/v1/x", first)));
    assert.equal(issued, 2, "one exchange at the start, one for the three 401s");
    assert.ok(renewed.every((t) => t !== undefined && t === renewed[0] && t !== first));
    // A late 401 on the old token takes the token already renewed.
    assert.equal(await auth.renewAfterRejection("/api/v1/y", first), renewed[0]);
    assert.equal(issued, 2);
    assert.equal(await auth.renewAfterRejection("/api/v1/client/config", "tml-test-key"), undefined);
    assert.equal(await auth.renewAfterRejection("/api/v1/auth/token", "tml-test-key"), undefined);
  } finally {
    auth.close();
  }
  const keyMode = make(false);
  assert.equal(await keyMode.renewAfterRejection("/api/v1/x", "tml-test-key"), undefined);
  assert.equal(issued, 2);
});

test("RestClient.fromEnv in JWT mode: close() (or await using) stops its background token refresh", async (t) => {
  const server = await startLocalServer({ clientConfig: { pjwt_auth_enabled: true }, jwtLifetimeSeconds: 1 });
  t.after(() => server.close());
  const warnings: string[] = [];
  const exchanges = () => server.requests.filter((r) => r.path === "/api/v1/auth/token").length;
  {
    await using rest = RestClient.fromEnv(
      { baseUrl: server.baseUrl, apiKey: server.apiKey, logger: { warn: (m) => warnings.push(m) } },
      {},
    );
    await rest.listTrainingRuns();
    assert.equal(exchanges(), 1);
  }
  // Closed: no refresh before the 1 s token expires, and none later either.
  await sleep(1_500);
  assert.equal(exchanges(), 1, "a closed client refreshed its token");
  await server.close();
  await sleep(300);
  assert.deepEqual(warnings, []);

  // A RestClient from a ServiceClient shares its credentials: closing the RestClient leaves the service working.
  await using again = await startLocalServer({ clientConfig: { pjwt_auth_enabled: true } });
  await using service = new ServiceClient({ baseUrl: again.baseUrl, apiKey: again.apiKey });
  const shared = service.createRestClient();
  await shared.close();
  assert.ok(Array.isArray((await service.createRestClient().listTrainingRuns()).training_runs));
});
