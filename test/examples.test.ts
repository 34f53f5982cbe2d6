/**
 * Every script in examples/ runs against a local server (started as `tinker-ts serve` would be, default settings),
 * each in its own process as a user runs it (`npx tsx examples/<x>.ts`, TINKER_BASE_URL / TINKER_API_KEY in the
 * environment), short and seeded, and prints what it says it does: checked through the SDK where a user would check
 * (what prune leaves, what download installs).
 */
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { type LocalServer, ServiceClient, startLocalServer } from "../src/index.js";
import { repoRoot, runScript, type ScriptResult } from "./helpers/run-script.js";

const exampleDir = path.join(repoRoot, "examples");
/** The examples this test runs; the first test fails when examples/ has one that is not here. */
const EXAMPLES = ["download-run.ts", "prune-run.ts", "rl-loop.ts", "sample.ts", "train-and-resume.ts"];

test("every example has a header saying what it does and how to run it, and imports the package by its name", async () => {
  const files = (await readdir(exampleDir)).filter((f) => f.endsWith(".ts")).sort();
  assert.deepEqual(files, EXAMPLES, "examples/ changed: run the new example in test/examples.test.ts");
  for (const f of files) {
    const text = await readFile(path.join(exampleDir, f), "utf8");
    assert.match(text, /^\/\*\*\n \* \S/, `${f} starts with a header comment`);
    assert.ok(text.includes(`npx tsx examples/${f}`), `${f}'s header says how to run it`);
    assert.ok(text.includes("TINKER_BASE_URL") && text.includes("TINKER_API_KEY"), `${f}'s header names the environment`);
    assert.match(text, /from "tinker-ts";/, `${f} imports from "tinker-ts" as a user does`);
    assert.doesNotMatch(text, /from "\.\.?\//, `${f} imports no relative path`);
  }
});

describe("examples/ run against a local server", { concurrency: 2 }, () => {
  let server: LocalServer;
  let service: ServiceClient;
  let work: string;
  before(async () => {
    server = await startLocalServer();
    service = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey });
    work = await mkdtemp(path.join(tmpdir(), "tinker-examples-"));
  });
  after(async () => {
    await service.close();
    await server.close();
    await rm(work, { recursive: true, force: true });
  });

  async function run(name: string, args: string[], expectCode = 0): Promise<ScriptResult> {
    const r = await runScript(path.join(exampleDir, name), args, {
      cwd: work,
      env: { TINKER_BASE_URL: server.baseUrl, TINKER_API_KEY: server.apiKey },
      timeoutMs: 90_000,
    });
    const where = `examples/${name} ${args.join(" ")}`;
    assert.ok(!r.timedOut, `${where} did not finish in time\n${r.stdout}\n${r.stderr}`);
    assert.equal(r.code, expectCode, `${where} exited with ${r.code}:\n${r.stdout}\n${r.stderr}`);
    if (expectCode === 0) assert.equal(r.stderr, "", `${where} wrote to stderr:\n${r.stderr}`);
    return r;
  }

  test("train-and-resume, then prune-run --dry-run, download-run (twice), prune-run on its run", async () => {
    const train = await run("train-and-resume.ts", ["--steps", "4", "--save-every", "1", "--resume-at", "2"]);
    const runId = /^run: (\S+)$/m.exec(train.stdout)?.[1];
    assert.ok(runId !== undefined, `no "run:" line in\n${train.stdout}`);
    assert.equal(train.stdout.match(/ saved tinker:\/\//g)?.length, 4, train.stdout);
    const resumed = train.stdout.split("\n").filter((l) => l.includes("resumed (uninterrupted"));
    assert.equal(resumed.length, 2, train.stdout);
    for (const l of resumed) assert.match(l, / same$/);
    assert.match(train.stdout, /the resumed run continues exactly like the uninterrupted one/);
    const losses = [...train.stdout.matchAll(/^step \d+ {2}loss (\S+)/gm)].map((m) => Number(m[1]));
    assert.ok(losses[3]! < losses[0]!, `the loss falls over 4 steps: ${losses.join(", ")}`);

    const rest = service.createRestClient();
    const count = async (): Promise<number> => (await rest.listCheckpoints(runId)).checkpoints.length;

    const out = path.join(work, "downloads");
    // Both only read the run: run at once.
    const [dry, dl] = await Promise.all([
      run("prune-run.ts", [runId, "--keep", "1", "--dry-run"]),
      run("download-run.ts", [runId, "-o", out]),
    ]);
    assert.match(dry.stdout, /dry run: would delete 3 checkpoints/);
    assert.equal(await count(), 4, "a dry run deletes nothing");
    assert.match(dl.stdout, /downloaded 4 of 4 checkpoints .*, 0 skipped, 0 failed/);
    const dirs = (await readdir(out)).sort();
    assert.equal(dirs.length, 4, dirs.join(", "));
    for (const d of dirs) await stat(path.join(out, d, "checkpoint_complete"));
    const again = await run("download-run.ts", [runId, "-o", out]);
    assert.match(again.stdout, /downloaded 0 of 4 checkpoints .*, 4 skipped, 0 failed/);

    const prune = await run("prune-run.ts", [runId, "--keep", "1"]);
    assert.match(prune.stdout, /deleted 3 checkpoints/);
    const left = (await rest.listCheckpoints(runId)).checkpoints;
    assert.deepEqual(
      left.map((c) => c.tinker_path),
      [`tinker://${runId}/weights/step-0004`],
      "prune leaves the newest checkpoint",
    );
  });

  test("sample: trains, saves for the sampler, prints the samples and the sentence's logprobs", async () => {
    const r = await run("sample.ts", ["--steps", "8", "--num-samples", "3", "--seed", "3"]);
    assert.match(r.stdout, /^saved tinker:\/\/\S+\/sampler_weights\/sample-example$/m);
    assert.equal(r.stdout.match(/^sample \d: /gm)?.length, 3, r.stdout);
    assert.match(r.stdout, /^computeLogprobs: 43 positions, first null, total -\d+\.\d+$/m);
  });

  test("rl-loop: the mean reward rises (seed 1: 0.109 → 0.867; asserted: by at least 0.3)", async () => {
    const r = await run("rl-loop.ts", ["--iterations", "6", "--seed", "1"]);
    const rewards = [...r.stdout.matchAll(/mean reward (\S+)/g)].map((m) => Number(m[1]));
    assert.equal(rewards.length, 6, r.stdout);
    assert.ok(rewards[5]! >= rewards[0]! + 0.3, `mean rewards ${rewards.join(", ")}`);
  });

  test("bad arguments: usage on stderr, exit 2", async () => {
    const r = await run("prune-run.ts", [], 2);
    assert.match(r.stderr, /^usage: npx tsx examples\/prune-run.ts RUN_ID/);
  });
});
