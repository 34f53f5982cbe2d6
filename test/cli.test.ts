/**
 * The tinker-ts CLI, run as a child process (`node bin/tinker-ts.mjs ...`) against a local server.
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Transport } from "../src/internal/transport.js";
import { RestClient } from "../src/rest-client.js";
import { startLocalServer, type LocalServer } from "../src/server/index.js";
import { seedRun, type SeededRun } from "./helpers/seed-checkpoints.js";

const BIN = fileURLToPath(new URL("../bin/tinker-ts.mjs", import.meta.url));

let server: LocalServer;
let rest: RestClient;
let run: SeededRun;
let work: string;

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[], options: { env?: Record<string, string | undefined>; input?: string } = {}): Promise<CliResult> {
  const env: Record<string, string | undefined> = {
    PATH: process.env["PATH"],
    HOME: process.env["HOME"],
    TINKER_BASE_URL: server.baseUrl,
    TINKER_API_KEY: server.apiKey,
    ...options.env,
  };
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [BIN, ...args],
      { env: env as NodeJS.ProcessEnv, cwd: work, timeout: 120_000 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === "number" ? err.code : 1;
        // The API key must never be printed, whatever the command.
        assert.ok(!stdout.includes(server.apiKey) && !stderr.includes(server.apiKey), `API key printed by ${args.join(" ")}`);
        resolve({ code, stdout, stderr });
      },
    );
    child.stdin?.end(options.input ?? "");
  });
}

before(async () => {
  server = await startLocalServer();
  rest = new RestClient(new Transport({ baseUrl: server.baseUrl, apiKey: server.apiKey }));
  run = await seedRun(server.baseUrl, server.apiKey, {
    saves: [{ name: "a" }, { name: "b" }, { name: "s1", kind: "sampler_weights" }, { name: "s2", kind: "sampler_weights" }],
  });
  work = await mkdtemp(path.join(tmpdir(), "tinker-cli-"));
});

after(async () => {
  await server.close();
  await rm(work, { recursive: true, force: true });
});

// Each test spawns processes (~0.5 s each), so the tests run concurrently; they use separate runs or paths.
describe("tinker-ts CLI", { concurrency: true }, () => {
  test("--help on every command and subcommand", async () => {
    const top = await cli(["--help"]);
    assert.equal(top.code, 0);
    assert.match(top.stdout, /Usage: tinker-ts <command>/);
    const all = [
      ["checkpoint", "--help"],
      ["checkpoint", "list", "--help"],
      ["checkpoint", "delete", "-h"],
      ["checkpoint", "set-ttl", "--help"],
      ["run", "info", "--help"],
      ["serve", "--help"],
    ];
    const results = await Promise.all(all.map((args) => cli(args, { env: { TINKER_BASE_URL: undefined, TINKER_API_KEY: undefined } })));
    results.forEach((r, i) => {
      assert.equal(r.code, 0, `${all[i]?.join(" ")}: ${r.stderr}`);
      assert.match(r.stdout, /Usage: tinker-ts/);
    });
  });

  test("missing environment: a clear message and a non-zero exit", async () => {
    const r = await cli(["checkpoint", "list"], { env: { TINKER_BASE_URL: undefined, TINKER_API_KEY: undefined } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ConfigurationError/);
    assert.match(r.stderr, /TINKER_BASE_URL/);
    assert.match(r.stderr, /tinker-ts serve/);
  });

  test("usage errors exit 2 with the usage line", async () => {
    const [unknown, badFlag, badFormat] = await Promise.all([
      cli(["frobnicate"]),
      cli(["checkpoint", "list", "--bogus"]),
      cli(["run", "list", "--format", "xml"]),
    ]);
    assert.equal(unknown.code, 2);
    assert.equal(badFlag.code, 2);
    assert.match(badFlag.stderr, /usage: tinker-ts checkpoint list/);
    assert.equal(badFormat.code, 2);
  });

  test("messages for a shell user: a taken port explained, flags instead of SDK options, --version", async () => {
    const taken = await cli(["serve", "--port", String(server.port), "--data-dir", path.join(work, "serve-taken")]);
    assert.equal(taken.code, 1);
    assert.match(taken.stderr, new RegExp(`Port ${server.port} is already in use .*--port ${server.port + 1} \\(or --port 0`));
    const version = await cli(["--version"]);
    assert.match(version.stdout, /^tinker-ts \d+\.\d+\.\d+/);
    const unconfigured = await cli(["run", "list"], { env: { TINKER_BASE_URL: undefined, TINKER_API_KEY: undefined } });
    assert.doesNotMatch(unconfigured.stderr, /\{ ?baseUrl|apiKey ?\}/, "no SDK option names");
  });

  test("retries with a 30 s budget and prints a retrying… line per retry on stderr", async () => {
    const flaky = await startLocalServer({
      apiKey: server.apiKey,
      faults: [{ path: "/api/v1/training_runs", method: "GET", times: 2, status: 503, retryAfter: 0 }],
    });
    try {
      const r = await cli(["run", "list"], { env: { TINKER_BASE_URL: flaky.baseUrl } });
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stderr.split("\n").filter((l) => l.startsWith("retrying "));
      assert.equal(lines.length, 2, r.stderr);
      assert.match(
        lines[0]!,
        /^retrying GET \/api\/v1\/training_runs in 0\.0 s \(503 Service Unavailable; retry 1, \d+ s of the 30 s budget left\)…$/,
      );
    } finally {
      await flaky.close();
    }
  });

  test("checkpoint list: table and JSON, per run and across runs", async () => {
    const json = await cli(["checkpoint", "list", "--run-id", run.runId, "--format", "json"]);
    assert.equal(json.code, 0, json.stderr);
    const items = JSON.parse(json.stdout) as { tinker_path: string; checkpoint_type: string; size_bytes: number }[];
    assert.deepEqual(
      items.map((c) => c.tinker_path),
      [...run.paths].reverse(),
      "newest first, like every listing",
    );
    assert.ok(items.every((c) => typeof c.size_bytes === "number"));

    const table = await cli(["checkpoint", "list"]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^PATH\s+TYPE\s+SIZE\s+PUBLIC\s+CREATED\s+EXPIRES/);
    for (const p of run.paths) assert.ok(table.stdout.includes(p));
    assert.match(table.stdout, /\d+ checkpoints, \d/);

    const limited = await cli(["checkpoint", "list", "--limit", "1", "--format", "json"]);
    assert.equal((JSON.parse(limited.stdout) as unknown[]).length, 1);
    const cut = await cli(["checkpoint", "list", "--run-id", run.runId, "--limit", "1"]);
    assert.match(cut.stdout, /^1 of 4 checkpoints, .* \(3 more, use --limit 4 to see them\)$/m);
    assert.ok(cut.stdout.includes(run.paths[3]!), "the newest is the one shown");
    const quiet = await cli(["checkpoint", "list", "--run-id", run.runId, "-q"]);
    assert.equal(
      quiet.stdout,
      [...run.paths]
        .reverse()
        .map((p) => `${p}\n`)
        .join(""),
    );
    // Piped output: no colour, nothing cut, relative times unless --absolute.
    assert.ok(!table.stdout.includes("\x1b["), "no escape codes when stdout is not a terminal");
    assert.match(table.stdout, / (just now|\d+ minutes? ago) +never$/m);
    const absolute = await cli(["checkpoint", "list", "--run-id", run.runId, "--absolute"]);
    assert.match(absolute.stdout, / \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}Z +never$/m);
  });

  test("checkpoint info and run list/info", async () => {
    const info = await cli(["checkpoint", "info", run.paths[0]!, "--format", "json"]);
    assert.equal(info.code, 0, info.stderr);
    const parsed = JSON.parse(info.stdout) as { checkpoint: { tinker_path: string }; weights_info: { lora_rank: number } };
    assert.equal(parsed.checkpoint.tinker_path, run.paths[0]);
    assert.equal(parsed.weights_info.lora_rank, 4);
    const infoTable = await cli(["checkpoint", "info", run.paths[0]!]);
    assert.match(infoTable.stdout, /Base model:\s+meta-llama\/Llama-3.2-1B/);

    const missing = await cli(["checkpoint", "info", `tinker://${run.runId}/weights/zzz`]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /NotFoundError: .*expired or deleted\?/);

    const runs = await cli(["run", "list", "--format", "json"]);
    assert.equal(runs.code, 0, runs.stderr);
    assert.ok((JSON.parse(runs.stdout) as { training_run_id: string }[]).some((r) => r.training_run_id === run.runId));
    const runInfo = await cli(["run", "info", run.runId, "--format", "json"]);
    assert.equal((JSON.parse(runInfo.stdout) as { lora_rank: number }).lora_rank, 4);
    const runTable = await cli(["run", "info", run.runId]);
    assert.match(runTable.stdout, /Run id:\s+/);
  });

  test("publish, unpublish and set-ttl", async () => {
    const p = run.paths[1]!;
    const pub = await cli(["checkpoint", "publish", p]);
    assert.equal(pub.code, 0, pub.stderr);
    assert.match(pub.stdout, /Published/);
    const again = await cli(["checkpoint", "publish", p]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /ConflictError/);
    assert.equal((await cli(["checkpoint", "unpublish", p])).code, 0);

    const short = await cli(["checkpoint", "set-ttl", p, "--ttl", "30m"]);
    assert.equal(short.code, 2);
    assert.match(short.stderr, /minimum is 3600/);
    const ttl = await cli(["checkpoint", "set-ttl", p, "--ttl", "7d"]);
    assert.equal(ttl.code, 0, ttl.stderr);
    assert.match(ttl.stdout, /7d \(604800 s\)/);
    let c = (await rest.listCheckpoints(run.runId)).checkpoints.find((x) => x.tinker_path === p);
    assert.ok(Date.parse(c?.expires_at ?? "") - Date.now() > 6 * 86_400_000);
    const removed = await cli(["checkpoint", "set-ttl", p, "--remove"]);
    assert.equal(removed.code, 0, removed.stderr);
    c = (await rest.listCheckpoints(run.runId)).checkpoints.find((x) => x.tinker_path === p);
    assert.equal(c?.expires_at ?? null, null);
    assert.equal((await cli(["checkpoint", "set-ttl", p])).code, 2);
  });

  test("checkpoint download installs, refuses to overwrite without --force", async () => {
    const r = await cli(["checkpoint", "download", run.paths[0]!, "-o", "models"]);
    assert.equal(r.code, 0, r.stderr);
    const dest = r.stdout.trim();
    assert.ok(existsSync(path.join(dest, "checkpoint_complete")), dest);
    assert.match(r.stderr, /Downloading tinker:\/\//);
    const again = await cli(["checkpoint", "download", run.paths[0]!, "-o", "models", "--format", "json"]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /DestinationExistsError: .* already exists\. Run again with --force/);
    assert.doesNotMatch(again.stderr, /force: true/);
    assert.match(r.stderr, /^Downloaded tinker:\/\/\S+: [\d.]+ \w*B in [\d.]+s \(.*\/s\)$/m, "a done line");
    const forced = await cli(["checkpoint", "download", run.paths[0]!, "-o", "models", "--force", "--format", "json"]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal((JSON.parse(forced.stdout) as { destination: string }).destination, dest);
    const invalid = await cli(["checkpoint", "download", "tinker://bad"]);
    assert.equal(invalid.code, 1);
    assert.match(invalid.stderr, /InvalidTinkerPathError/);
  });

  test("checkpoint delete: dry run, refusal without a terminal, --yes, summary", async () => {
    const victim = await seedRun(server.baseUrl, server.apiKey, {
      saves: [{ name: "t1" }, { name: "t2" }, { name: "x1", kind: "sampler_weights" }],
    });
    const count = async (): Promise<number> => (await rest.listCheckpoints(victim.runId)).checkpoints.length;

    const dry = await cli(["checkpoint", "delete", "--run-id", victim.runId, "--type", "training", "--dry-run"]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /2 checkpoints to delete, .* in total/);
    assert.ok(dry.stdout.includes(victim.paths[0]!) && !dry.stdout.includes(victim.paths[2]!));
    assert.match(dry.stdout, /Dry run: nothing was deleted/);
    const dryJson = await cli(["checkpoint", "delete", "--run-id", victim.runId, "--dry-run", "--format", "json"]);
    const plan = JSON.parse(dryJson.stdout) as { checkpoints: { tinker_path: string }[]; total_bytes: number };
    assert.equal(plan.checkpoints.length, 3);
    assert.ok(plan.total_bytes > 0);
    assert.equal(await count(), 3);

    const none = await cli(["checkpoint", "delete", "--run-id", victim.runId, "--before", "7d", "--yes"]);
    assert.equal(none.code, 0);
    assert.match(none.stdout, /No checkpoints match/);

    const refused = await cli(["checkpoint", "delete", "--run-id", victim.runId, "--type", "training"], { input: "y\n" });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /--yes/);
    assert.equal(await count(), 3);

    const yes = await cli(["checkpoint", "delete", "--run-id", victim.runId, "--type", "training", "--after", "1h", "--yes"]);
    assert.equal(yes.code, 0, yes.stderr);
    assert.match(yes.stdout, /Deleted 2 of 2 checkpoints/);
    assert.equal(await count(), 1);

    const mixed = await cli([
      "checkpoint",
      "delete",
      victim.paths[2]!,
      `tinker://${victim.runId}/weights/gone`,
      "--yes",
      "--format",
      "json",
    ]);
    assert.equal(mixed.code, 1);
    const summary = JSON.parse(mixed.stdout) as { deleted: string[]; failed: { tinker_path: string; error: string }[] };
    assert.deepEqual(summary.deleted, [victim.paths[2]]);
    assert.equal(summary.failed[0]?.tinker_path, `tinker://${victim.runId}/weights/gone`);
    assert.match(summary.failed[0]?.error ?? "", /NotFoundError/);
    assert.equal(await count(), 0);

    const both = await cli(["checkpoint", "delete", victim.paths[0]!, "--run-id", victim.runId]);
    assert.equal(both.code, 2);
  });

  test("checkpoint download: Ctrl-C while the archive is being generated exits 130 and leaves nothing behind", async () => {
    const slow = await startLocalServer({ archiveGenerationDelayMs: 60_000 });
    try {
      const seeded = await seedRun(slow.baseUrl, slow.apiKey, { saves: [{ name: "c" }] });
      const out = await mkdtemp(path.join(work, "sigint-"));
      const child = spawn(process.execPath, [BIN, "checkpoint", "download", seeded.paths[0]!, "-o", out], {
        env: { PATH: process.env["PATH"], HOME: process.env["HOME"], TINKER_BASE_URL: slow.baseUrl, TINKER_API_KEY: slow.apiKey },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stderr = "";
      const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no "still being generated" line: ${stderr}`)), 90_000); // the child starts tsx: slow on a loaded machine
        child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
          stderr += chunk;
          if (/still being generated/.test(stderr)) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      const sentAt = Date.now();
      child.kill("SIGINT");
      assert.equal(await exited, 130, stderr);
      assert.ok(Date.now() - sentAt < 5_000, "stops at once, not after the 30 s wait");
      assert.match(stderr, /Interrupted: .* was not downloaded/);
      assert.deepEqual(await readdir(out), [], "no temporary files");
    } finally {
      await slow.close();
    }
  });

  test("checkpoint delete --keep-last N keeps the newest N of each type, also with other filters", async () => {
    const run = await seedRun(server.baseUrl, server.apiKey, {
      saves: [
        { name: "a1" },
        { name: "a2" },
        { name: "a3" },
        { name: "a4" },
        { name: "s1", kind: "sampler_weights" },
        { name: "s2", kind: "sampler_weights" },
      ],
    });
    const plan = async (...args: string[]): Promise<string[]> => {
      const r = await cli(["checkpoint", "delete", "--run-id", run.runId, ...args, "--dry-run", "--format", "json"]);
      assert.equal(r.code, 0, r.stderr);
      return (JSON.parse(r.stdout) as { checkpoints: { tinker_path: string }[] }).checkpoints
        .map((c) => c.tinker_path.split("/").pop() as string)
        .sort();
    };
    assert.deepEqual(await plan("--keep-last", "2"), ["a1", "a2"]);
    assert.deepEqual(await plan("--keep-last", "1", "--type", "training"), ["a1", "a2", "a3"]);
    assert.deepEqual(await plan("--keep-last", "3", "--before", "7d"), []);
    const bad = await cli(["checkpoint", "delete", "--run-id", run.runId, "--keep-last", "0", "--dry-run"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--keep-last must be a whole number ≥ 1/);
    const noRun = await cli(["checkpoint", "delete", run.paths[0]!, "--keep-last", "1"]);
    assert.equal(noRun.code, 2);
    const done = await cli(["checkpoint", "delete", "--run-id", run.runId, "--keep-last", "2", "--yes"]);
    assert.equal(done.code, 0, done.stderr);
    assert.match(done.stdout, /Deleted 2 of 2 checkpoints/);
    assert.deepEqual((await rest.listCheckpoints(run.runId)).checkpoints.map((c) => c.checkpoint_id).sort(), [
      "sampler_weights/s1",
      "sampler_weights/s2",
      "weights/a3",
      "weights/a4",
    ]);
  });
});
