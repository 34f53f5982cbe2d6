/**
 * `tinker-ts whoami`, `session list|info` and `audit`, run in-process against the local server in JWT mode.
 */
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { test } from "node:test";
import { main } from "../src/cli/main.js";
import { ServiceClient, startLocalServer } from "../src/index.js";
import { BASE_MODEL, trainSteps } from "./helpers/training.js";

async function run(argv: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main(argv, {
    stdout: { write: (c: string) => (out += c) },
    stderr: { write: (c: string) => (err += c) },
    stdin: new PassThrough(),
    env,
  });
  return { code, out, err };
}

test("whoami, session list/info and audit", async () => {
  await using server = await startLocalServer({ clientConfig: { pjwt_auth_enabled: true } });
  const env = { TINKER_BASE_URL: server.baseUrl, TINKER_API_KEY: server.apiKey };
  await using service = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey });
  const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
  await trainSteps(training, 0, 1);
  const { path } = await training.saveState("cli-audit");

  const who = await run(["whoami", "--format", "json"], env);
  assert.equal(who.code, 0, who.err);
  assert.match((JSON.parse(who.out) as { user_urn: string }).user_urn, /^urn:tinker-local:user:/);
  assert.ok(!who.out.includes(server.apiKey));

  const list = await run(["session", "list", "--format", "json"], env);
  assert.equal(list.code, 0, list.err);
  const sessions = JSON.parse(list.out) as string[];
  assert.equal(sessions.length, 1);
  const info = await run(["session", "info", sessions[0]!], env);
  assert.equal(info.code, 0, info.err);
  assert.ok(info.out.includes(training.modelId));

  const audit = await run(["audit", "--checkpoints", "--format", "json"], env);
  assert.equal(audit.code, 0, audit.err);
  assert.deepEqual(
    (JSON.parse(audit.out) as { tinker_path: string }[]).map((e) => e.tinker_path),
    [path],
  );
  const table = await run(["audit"], env);
  assert.ok(table.out.includes("checkpoint_saved") && table.out.includes(path));
  const empty = await run(["audit", "--day", "2001-01-01"], env);
  assert.match(empty.out, /No audit events on 2001-01-01/);
  const bad = await run(["audit", "--day", "yesterday"], env);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /YYYY-MM-DD/);
});

test("whoami without a JWT says why, without the key", async () => {
  await using server = await startLocalServer();
  const r = await run(["whoami"], { TINKER_BASE_URL: server.baseUrl, TINKER_API_KEY: server.apiKey });
  assert.equal(r.code, 1);
  assert.match(r.err, /JWT/);
  assert.ok(!r.err.includes(server.apiKey));
});
