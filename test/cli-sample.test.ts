/**
 * `tinker-ts sample`: prints sampled token ids and logprobs from a checkpoint on the local server (table and JSON),
 * and refuses bad arguments with a usage error (exit 2) before anything is sent.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { main } from "../src/cli/main.js";
import type { CliIO } from "../src/cli/util.js";
import { ServiceClient, startLocalServer, type LocalServer } from "../src/index.js";
import { BASE_MODEL, trainSteps } from "./helpers/training.js";

function capture(env: NodeJS.ProcessEnv): { io: CliIO; out: () => string; err: () => string } {
  let out = "";
  let err = "";
  return {
    io: { stdout: { write: (c: string) => (out += c) }, stderr: { write: (c: string) => (err += c) }, stdin: new PassThrough(), env },
    out: () => out,
    err: () => err,
  };
}

describe("tinker-ts sample", () => {
  let server: LocalServer;
  let env: NodeJS.ProcessEnv;
  let path: string;

  before(async () => {
    server = await startLocalServer();
    env = { TINKER_BASE_URL: server.baseUrl, TINKER_API_KEY: server.apiKey };
    const service = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey });
    const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
    await trainSteps(training, 0, 1);
    path = (await training.saveWeightsForSampler("cli")).path;
    await service.close();
  });

  after(() => server.close());

  test("prints the sampled token ids and logprobs as JSON, the same for the same seed", async () => {
    const args = [
      "sample",
      path,
      "--prompt-tokens",
      "151644,872,198",
      "--max-tokens",
      "4",
      "--num-samples",
      "2",
      "--seed",
      "9",
      "--temperature",
      "0.8",
      "--format",
      "json",
    ];
    const a = capture(env);
    assert.equal(await main(args, a.io), 0, a.err());
    const res = JSON.parse(a.out()) as {
      model_path: string;
      sequences: Array<{ tokens: number[]; logprobs: number[]; stop_reason: string }>;
    };
    assert.equal(res.model_path, path);
    assert.equal(res.sequences.length, 2);
    for (const s of res.sequences) {
      assert.equal(s.tokens.length, 4);
      assert.equal(s.logprobs.length, 4);
      assert.equal(s.stop_reason, "length");
    }
    const b = capture(env);
    assert.equal(await main(args, b.io), 0);
    assert.deepEqual(JSON.parse(b.out()).sequences, res.sequences);
    const sent = server.requests.filter((r) => r.path === "/api/v1/asample").at(-1)!.body as { sampling_params: unknown };
    assert.deepEqual(sent.sampling_params, { max_tokens: 4, seed: 9, temperature: 0.8, top_k: -1, top_p: 1 });

    const t = capture(env);
    assert.equal(
      await main(
        args.slice(0, -2), // the same, without --format json
        t.io,
      ),
      0,
    );
    assert.match(t.out(), /sample 0: 4 tokens, stop reason length, total logprob -\d+\.\d{4}/);
    assert.match(t.out(), /POS\s+TOKEN\s+LOGPROB/);
    for (const [j, tok] of res.sequences[1]!.tokens.entries()) {
      assert.match(t.out(), new RegExp(`${j}\\s+${tok}\\s+${res.sequences[1]!.logprobs[j]!.toFixed(4)}`));
    }
  });

  test("a stop token ends a sample; a base model can be sampled; errors name the problem", async () => {
    const greedy = capture(env);
    assert.equal(
      await main(
        ["sample", "--base-model", BASE_MODEL, "--prompt-tokens", "1,2", "--max-tokens", "3", "--top-k", "1", "--format", "json"],
        greedy.io,
      ),
      0,
      greedy.err(),
    );
    const tokens = (JSON.parse(greedy.out()) as { sequences: Array<{ tokens: number[] }> }).sequences[0]!.tokens;
    const stopped = capture(env);
    assert.equal(
      await main(
        [
          "sample",
          "--base-model",
          BASE_MODEL,
          "--prompt-tokens",
          "1,2",
          "--max-tokens",
          "3",
          "--top-k",
          "1",
          "--stop-tokens",
          String(tokens[1]),
          "--format",
          "json",
        ],
        stopped.io,
      ),
      0,
    );
    const s = (JSON.parse(stopped.out()) as { sequences: Array<{ tokens: number[]; stop_reason: string }> }).sequences[0]!;
    assert.deepEqual(s, { ...s, tokens: tokens.slice(0, 2), stop_reason: "stop" });

    const before = server.requests.length;
    for (const args of [
      ["sample", path],
      ["sample", path, "--prompt-tokens", "1,x"],
      ["sample", "--prompt-tokens", "1"],
      ["sample", path, "--prompt-tokens", "1", "--max-tokens", "0"],
      ["sample", path, "--prompt-tokens", "1", "--format", "yaml"],
    ]) {
      const c = capture(env);
      assert.equal(await main(args, c.io), 2, args.join(" "));
      assert.match(c.err(), /^error: UsageError: .+\nusage: tinker-ts sample/);
    }
    assert.equal(server.requests.length, before);
    const missing = capture(env);
    assert.equal(await main(["sample", `${path}-gone`, "--prompt-tokens", "1"], missing.io), 1);
    assert.match(missing.err(), new RegExp(`error: NotFoundError: .*${path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}-gone`));
    const help = capture(env);
    assert.equal(await main(["sample", "--help"], help.io), 0);
    assert.match(help.out(), /--prompt-tokens IDS/);
  });
});
