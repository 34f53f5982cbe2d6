/**
 * Every ```ts block of README.md runs: each one (see the convention below) in its own process against a fresh
 * local server (in JWT mode, as the Tinker service), and must exit 0 within its timeout and write nothing to stderr.
 *
 * The convention (README.md, Development, says the same; the code is scripts/readme-snippets.ts):
 * - A ```ts block is a module of its own (top-level `await` works). It may use without importing them any export
 *   of `tinker-ts` and the names test/helpers/readme-prelude.ts creates against the server (`service`, `rest`,
 *   `training`, `runId`, `batch`, `nextBatch`, `tinkerPath`, `lastCheckpointPath`, `promptTokens`,
 *   `completionTokens`, `samplerLogprobs`, `advantage`).
 * - ```ts continues  appends a block to the previous one (they run as one file).
 * - ```ts no-run     neither runs nor type-checks a block (for a real proxy, a package not installed here); at most
 *   MAX_NO_RUN of them.
 *
 * `npm run examples` writes each block to test/readme-snippets/NN-<heading>.ts (tsc type-checks them there, all in
 * the one `tsc --noEmit` run; `examples:check` fails in CI when they are stale); this test checks that those files
 * hold the README's blocks as they are now and runs them, two at a time, each in a fresh temporary directory.
 */
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { MAX_NO_RUN, readmeSnippets } from "../scripts/readme-snippets.js";
import { type LocalServer, startLocalServer } from "../src/index.js";
import { repoRoot, runScript } from "./helpers/run-script.js";

const snippetDir = path.join(repoRoot, "test", "readme-snippets");
const snippets = readmeSnippets(await readFile(path.join(repoRoot, "README.md"), "utf8"));

test("test/readme-snippets/ holds README.md's ```ts blocks as they are now (else: npm run examples)", async () => {
  assert.ok(snippets.length >= 10, `only ${snippets.length} \`\`\`ts blocks found in README.md`);
  const files = (await readdir(snippetDir)).filter((f) => f.endsWith(".ts")).sort();
  assert.deepEqual(
    files,
    snippets.filter((s) => s.run).map((s) => s.file),
    "test/readme-snippets/ does not match README.md's ```ts blocks: run `npm run examples`",
  );
  for (const s of snippets.filter((x) => x.run)) {
    const text = await readFile(path.join(snippetDir, s.file), "utf8");
    assert.ok(text.includes(`\n${s.code}\n`), `${s.file} is not README.md line ${s.line}'s block as it is now: run \`npm run examples\``);
  }
});

test(`at most ${MAX_NO_RUN} README.md blocks are fenced \`\`\`ts no-run`, () => {
  const skipped = snippets.filter((s) => !s.run);
  assert.ok(
    skipped.length <= MAX_NO_RUN,
    `${skipped.length} blocks are fenced \`\`\`ts no-run (lines ${skipped.map((s) => s.line).join(", ")}); make them run against the local server`,
  );
});

describe("README.md's ```ts blocks run against a local server", { concurrency: 2 }, () => {
  let server: LocalServer;
  before(async () => {
    // JWT mode, as the Tinker service runs (and `rest.whoami()` needs a JWT).
    server = await startLocalServer({ clientConfig: { pjwt_auth_enabled: true } });
  });
  after(async () => {
    await server.close();
  });

  for (const s of snippets.filter((x) => x.run)) {
    test(`README.md line ${s.line} (${s.heading}) → ${s.file}`, async () => {
      const cwd = await mkdtemp(path.join(tmpdir(), "tinker-readme-"));
      try {
        const r = await runScript(path.join(snippetDir, s.file), [], {
          cwd,
          env: { TINKER_BASE_URL: server.baseUrl, TINKER_API_KEY: server.apiKey },
          timeoutMs: 60_000,
        });
        const where = `README.md line ${s.line} (${s.file})`;
        assert.ok(!r.timedOut, `${where} did not finish within 60 s (a server left open? a hang?)\n${r.stderr}`);
        assert.equal(r.code, 0, `${where} exited with ${r.code}:\n${r.stderr}`);
        assert.equal(r.stderr, "", `${where} wrote to stderr:\n${r.stderr}`);
      } finally {
        await rm(cwd, { recursive: true, force: true });
      }
    });
  }
});

test("the fence convention: ```ts continues joins the block before, ```ts no-run is not run, unknown flags fail", () => {
  const md = [
    "# A",
    "```ts",
    "const a = 1;",
    "```",
    "```sh",
    "```ts inside a shell block is not a block",
    "```",
    "```ts continues",
    "console.log(a);",
    "```",
    "## B",
    "```ts no-run",
    "await fetch(proxyUrl);",
    "```",
  ].join("\n");
  const got = readmeSnippets(md);
  assert.deepEqual(
    got.map((s) => [s.file, s.line, s.code, s.run]),
    [
      ["01-a.ts", 2, "const a = 1;\n\nconsole.log(a);", true],
      ["02-b.ts", 12, "await fetch(proxyUrl);", false],
    ],
  );
  assert.throws(() => readmeSnippets("```ts norun\nx\n```"), /README.md:1: unknown flag "norun"/);
  assert.throws(() => readmeSnippets("```ts continues\nx\n```"), /has no ```ts block before it/);
});
