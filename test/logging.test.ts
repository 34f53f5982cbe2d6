/**
 * Logging: the levels and their filter, TINKER_LOG, the per-attempt debug lines and the onRequest / onResponse
 * hooks (REST, a training op's submit and polls, a retried 503, a download), the CLI's --verbose, and that no key,
 * JWT or signed-URL query ever reaches a log line or a hook event. Against the local server in JWT mode, so every
 * request carries a JWT that must stay out of the logs.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  downloadCheckpoint,
  type Logger,
  type LogLevel,
  type RequestEvent,
  type ResponseEvent,
  RestClient,
  ServiceClient,
  type ServiceClientOptions,
  startLocalServer,
  type LocalServer,
} from "../src/index.js";
import { BASE_MODEL, trainSteps } from "./helpers/training.js";

const API_KEY = "tml-logging-SECRET-k3y-7f3a9c1e5b";
const BIN = fileURLToPath(new URL("../bin/tinker-ts.mjs", import.meta.url));

let server: LocalServer;
let work: string;
/** Everything any client or hook of this file produced: checked for secrets at the end. */
const captured: string[] = [];

interface Capture {
  lines: string[];
  requests: RequestEvent[];
  responses: ResponseEvent[];
  options: ServiceClientOptions;
}

/** A client option bag whose logger and hooks record everything (also into `captured`). */
function capture(logLevel: LogLevel | undefined, hooks = true): Capture {
  const lines: string[] = [];
  const requests: RequestEvent[] = [];
  const responses: ResponseEvent[] = [];
  const at =
    (level: string) =>
    (m: string): void => {
      lines.push(`${level}: ${m}`);
      captured.push(m);
    };
  const logger: Logger = { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
  const options: ServiceClientOptions = {
    baseUrl: server.baseUrl,
    apiKey: API_KEY,
    logger,
    ...(logLevel === undefined ? {} : { logLevel }),
    ...(hooks
      ? {
          onRequest: (e: RequestEvent) => {
            requests.push(e);
            captured.push(JSON.stringify(e));
          },
          onResponse: (e: ResponseEvent) => {
            responses.push(e);
            captured.push(JSON.stringify(e));
          },
        }
      : {}),
  };
  return { lines, requests, responses, options };
}

const debugLines = (c: Capture): string[] => c.lines.filter((l) => l.startsWith("debug: ")).map((l) => l.slice(7));

before(async () => {
  server = await startLocalServer({ apiKey: API_KEY, clientConfig: { pjwt_auth_enabled: true } });
  work = await mkdtemp(path.join(tmpdir(), "tinker-logging-"));
});

after(async () => {
  await server.close();
  await rm(work, { recursive: true, force: true });
});

describe("per-request debug lines and hooks", () => {
  test("a REST call: one debug line and one hook pair per attempt, with method, path, status, attempt, ms and the server's request id", async () => {
    const c = capture("debug");
    await using service = new ServiceClient(c.options);
    const rest = service.createRestClient();
    await rest.listTrainingRuns({ limit: 5 });

    const served = server.requests.filter((r) => r.path === "/api/v1/training_runs").at(-1);
    assert.ok(served?.requestId, "the local server answers with x-request-id");
    const line = debugLines(c).find((l) => l.startsWith("GET /api/v1/training_runs"));
    assert.equal(
      line?.replace(/\(\d+ ms/, "(N ms"),
      `GET /api/v1/training_runs?limit=5 → 200 (N ms, attempt 1, request id ${served.requestId})`,
    );

    const req = c.requests.find((e) => e.path === "/api/v1/training_runs");
    assert.ok(req);
    assert.equal(req.method, "GET");
    assert.equal(req.url, `${server.baseUrl}/api/v1/training_runs?limit=5`);
    assert.equal(req.attempt, 1);
    assert.equal(req.kind, "api");
    assert.match(req.headers["user-agent"] ?? "", /^tinker-ts\//);
    assert.equal(req.headers["x-api-key"], undefined, "the credential header is left out");
    const res = c.responses.find((e) => e.request === req);
    assert.ok(res, "onResponse gets the same request object as onRequest");
    assert.equal(res.status, 200);
    assert.equal(res.requestId, served.requestId);
    assert.ok(res.ms >= 0 && res.ms < 10_000);
    assert.equal(res.retry, undefined);
    // JWT mode: the config read and the exchange are reported too.
    assert.ok(debugLines(c).some((l) => l.startsWith("POST /api/v1/client/config → 200")));
    assert.ok(debugLines(c).some((l) => l.startsWith("POST /api/v1/auth/token → 200")));
    assert.equal(c.requests.length, c.responses.length);
  });

  test("a training op: the submit and each poll of its result are reported", async () => {
    const c = capture("debug", false);
    await using service = new ServiceClient(c.options);
    const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
    await trainSteps(training, 0, 1);
    const lines = debugLines(c);
    assert.ok(
      lines.some((l) => /^POST \/api\/v1\/forward_backward → 200 \(\d+ ms, attempt 1, request id [\w-]+\)$/.test(l)),
      lines.join("\n"),
    );
    assert.ok(
      lines.some((l) => /^POST \/api\/v1\/retrieve_future → 200 \(\d+ ms, attempt 1, request id [\w-]+\)$/.test(l)),
      lines.join("\n"),
    );
    assert.ok(lines.some((l) => l.startsWith("POST /api/v1/create_session → 200")));
    assert.ok(lines.some((l) => l.startsWith("POST /api/v1/optim_step → 200")));
  });

  test("a retried 503: attempt 1 says why and how long it waits, attempt 2 succeeds", async () => {
    const c = capture("debug");
    await using service = new ServiceClient(c.options);
    const rest = service.createRestClient();
    await rest.listTrainingRuns(); // config + exchange first, so the fault meets the listing
    c.lines.length = 0;
    c.requests.length = 0;
    c.responses.length = 0;
    server.setFaults([{ path: "/api/v1/training_runs", method: "GET", status: 503, retryAfter: 0, times: 1 }]);
    try {
      await rest.listTrainingRuns();
    } finally {
      server.clearFaults();
    }
    const lines = debugLines(c);
    assert.equal(lines.length, 2, lines.join("\n"));
    assert.match(
      lines[0]!,
      /^GET \/api\/v1\/training_runs → 503 \(\d+ ms, attempt 1(, request id [\w-]+)?\); retrying in 0 ms \(503 Service Unavailable\)$/,
    );
    assert.match(lines[1]!, /^GET \/api\/v1\/training_runs → 200 \(\d+ ms, attempt 2, request id [\w-]+\)$/);
    assert.deepEqual(
      c.requests.map((e) => e.attempt),
      [1, 2],
    );
    assert.deepEqual(c.responses[0]?.retry, { reason: "503 Service Unavailable", delayMs: 0 });
    assert.equal(c.responses[0]?.status, 503);
    assert.equal(c.responses[1]?.status, 200);
    assert.equal(c.responses[1]?.request.attempt, 2);
  });

  test("a download: the archive URL call and the archive GET, whose signed query is never shown", async () => {
    const c = capture("debug");
    await using service = new ServiceClient(c.options);
    const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
    const { path: ckpt } = await training.saveState("logged");
    const rest = service.createRestClient();
    const signed = new URL((await rest.getCheckpointArchiveUrlFromTinkerPath(ckpt)).url);
    assert.notEqual(signed.search, "", "the local server signs its archive URLs in the query");
    c.lines.length = 0;
    // The first GET of the archive is cut after 1000 bytes: the second attempt resumes it.
    server.setFaults([{ path: "/local/archives/", cutAfterBytes: 1000, times: 1 }]);
    try {
      await downloadCheckpoint(rest, ckpt, { outputDir: work, retryDelayMs: 0 });
    } finally {
      server.clearFaults();
    }

    const lines = debugLines(c);
    assert.ok(
      lines.some((l) => l.startsWith("GET /api/v1/training_runs/") && l.includes("/archive → ")),
      lines.join("\n"),
    );
    const gets = lines.filter((l) => l.startsWith("GET download ") || l.startsWith("download attempt"));
    assert.equal(gets.length, 3, lines.join("\n"));
    assert.match(gets[0]!, /^GET download \/local\/archives\/\S+ → 200 \(\d+ ms, attempt 1(, request id [\w-]+)?\)$/);
    assert.match(gets[1]!, /^download attempt 1 of tinker:\/\/\S+ ended \(.+\); retrying in 0 ms$/);
    assert.match(gets[2]!, /^GET download \/local\/archives\/\S+ → 206 \(\d+ ms, attempt 2(, request id [\w-]+)?\)$/);
    const events = c.requests.filter((e) => e.kind === "download");
    assert.deepEqual(
      events.map((e) => e.attempt),
      [1, 2],
    );
    for (const event of events) {
      assert.equal(event.url.includes("?"), false);
      assert.equal(event.path, signed.pathname);
    }
    assert.equal(events[1]?.headers["range"], "bytes=1000-");
    assert.deepEqual(
      c.responses.filter((e) => e.request.kind === "download").map((e) => e.status),
      [200, 206],
    );
    for (const [, value] of signed.searchParams) {
      for (const text of captured) assert.ok(!text.includes(value), `a signed-URL query value was logged: ${text}`);
    }
  });
});

describe("levels and TINKER_LOG", () => {
  test("info hides debug lines; off hides warnings; without hooks no request is observed at all", async () => {
    const info = capture("info", false);
    {
      await using service = new ServiceClient(info.options);
      const rest = service.createRestClient();
      await rest.listTrainingRuns();
      assert.equal(rest.transport.observer, undefined, "nothing listens: no event is built per attempt");
    }
    assert.deepEqual(info.lines, []);

    const off = capture("off", false);
    {
      // A throwing hook gives a warning, except at "off".
      const throwing = () => {
        throw new Error("ignored");
      };
      await using service = new ServiceClient({ ...off.options, onRequest: throwing });
      await service.createRestClient().listTrainingRuns();
    }
    assert.deepEqual(off.lines, []);
  });

  test("a { warn } logger (the old shape) still works, and gets the debug lines its level lets through", async () => {
    const got: string[] = [];
    await using service = new ServiceClient({
      baseUrl: server.baseUrl,
      apiKey: API_KEY,
      logger: { warn: (m) => got.push(m) },
      logLevel: "debug",
    });
    await service.createRestClient().listTrainingRuns();
    captured.push(...got);
    assert.ok(
      got.some((m) => m.startsWith("GET /api/v1/training_runs → 200")),
      got.join("\n"),
    );
  });

  test("TINKER_LOG sets the level when logLevel is not given; an invalid value warns once and keeps warn", async () => {
    const env = { TINKER_BASE_URL: server.baseUrl, TINKER_API_KEY: API_KEY };
    const debug: string[] = [];
    const rest = RestClient.fromEnv({ logger: { debug: (m) => debug.push(m) } }, { ...env, TINKER_LOG: "DEBUG" });
    await rest.listTrainingRuns();
    captured.push(...debug);
    assert.ok(
      debug.some((m) => m.startsWith("GET /api/v1/training_runs → 200")),
      debug.join("\n"),
    );

    const option: string[] = [];
    const quiet = RestClient.fromEnv({ logger: { debug: (m) => option.push(m) }, logLevel: "warn" }, { ...env, TINKER_LOG: "debug" });
    await quiet.listTrainingRuns();
    assert.deepEqual(option, [], "the option wins over TINKER_LOG");

    const lines: string[] = [];
    const bad = RestClient.fromEnv(
      { logger: { debug: (m) => lines.push(`debug: ${m}`), warn: (m) => lines.push(`warn: ${m}`) } },
      { ...env, TINKER_LOG: "loud" },
    );
    await bad.listTrainingRuns();
    await bad.listTrainingRuns();
    captured.push(...lines);
    assert.deepEqual(lines, ['warn: TINKER_LOG="loud" is not a log level (debug, info, warn, error, off); using "warn".']);
  });

  test("an invalid logLevel or hook is refused before anything is sent", () => {
    const before = server.requests.length;
    assert.throws(
      () => new ServiceClient({ baseUrl: server.baseUrl, apiKey: API_KEY, logLevel: "verbose" as LogLevel }),
      /logLevel must be one of debug, info, warn, error, off/,
    );
    assert.throws(
      () => new ServiceClient({ baseUrl: server.baseUrl, apiKey: API_KEY, onResponse: "span" as unknown as () => void }),
      /onResponse must be a function, got string/,
    );
    assert.equal(server.requests.length, before);
  });
});

describe("hooks that fail", () => {
  test("a throwing onRequest and a rejecting onResponse do not fail the calls, and each is reported once", async () => {
    const warnings: string[] = [];
    await using service = new ServiceClient({
      baseUrl: server.baseUrl,
      apiKey: API_KEY,
      logger: { warn: (m) => warnings.push(m) },
      onRequest: () => {
        throw new Error("span exporter down");
      },
      onResponse: async () => {
        throw new Error("async exporter down");
      },
    });
    const rest = service.createRestClient();
    await rest.listTrainingRuns();
    await rest.listTrainingRuns();
    await new Promise((r) => setImmediate(r));
    captured.push(...warnings);
    assert.equal(warnings.length, 2, warnings.join("\n"));
    assert.match(warnings[0]!, /the onRequest hook threw \(Error: span exporter down\); the request goes on/);
    assert.match(warnings[1]!, /the onResponse hook threw \(Error: async exporter down\)/);
  });
});

describe("the CLI", () => {
  function cli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(
        process.execPath,
        [BIN, ...args],
        {
          env: { PATH: process.env["PATH"] ?? "", TINKER_BASE_URL: server.baseUrl, TINKER_API_KEY: API_KEY, ...env },
          cwd: work,
          timeout: 60_000,
        },
        (err, stdout, stderr) => {
          captured.push(stdout, stderr);
          resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : 1, stdout, stderr });
        },
      );
    });
  }

  test("--verbose and TINKER_LOG=debug print the debug lines on stderr, prefixed [tinker-ts]; stdout stays clean", async () => {
    const verbose = await cli(["run", "list", "--verbose", "--format", "json"], {});
    assert.equal(verbose.code, 0, verbose.stderr);
    assert.match(verbose.stderr, /^\[tinker-ts\] debug: GET \/api\/v1\/training_runs\S* → 200 \(\d+ ms, attempt 1, request id [\w-]+\)$/m);
    assert.doesNotMatch(verbose.stdout, /tinker-ts\]/);
    JSON.parse(verbose.stdout);

    const env = await cli(["run", "list", "--format", "json"], { TINKER_LOG: "debug" });
    assert.equal(env.code, 0, env.stderr);
    assert.match(env.stderr, /^\[tinker-ts\] debug: GET \/api\/v1\/training_runs/m);

    const plain = await cli(["run", "list", "--format", "json"], {});
    assert.equal(plain.stderr, "", "nothing is logged at the default level");
  });
});

test("no key, JWT or signed query appears in anything captured", () => {
  const jwts = new Set<string>();
  for (const r of server.requests) {
    const key = r.headers["x-api-key"];
    if (typeof key === "string" && key.startsWith("eyJ")) jwts.add(key);
  }
  assert.ok(jwts.size > 0, "JWT mode: the clients sent JWTs");
  assert.ok(captured.length > 50, `captured ${captured.length} texts`);
  for (const text of captured) {
    assert.ok(!text.includes(API_KEY), `the API key was logged: ${text}`);
    for (const jwt of jwts) {
      assert.ok(!text.includes(jwt), `a JWT was logged: ${text}`);
      // Its signature alone is secret enough.
      assert.ok(!text.includes(jwt.split(".")[2]!), `a JWT signature was logged: ${text}`);
    }
    assert.doesNotMatch(text, /x-api-key|authorization|cookie/i);
  }
});
