/**
 * The packed artifact: `npm pack` (which builds dist/), install the tarball into a throwaway ESM project from
 * the npm cache only, import the package root and run the installed CLI, as a user would.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";

const run = promisify(execFile);
const root = fileURLToPath(new URL("..", import.meta.url));
const npm = process.platform === "win32" ? "npm.cmd" : "npm";

test("the packed package installs, imports from its root, trains, downloads and runs its CLI", { timeout: 240_000 }, async () => {
  const work = await mkdtemp(join(tmpdir(), "tinker-pack-"));
  try {
    await run(npm, ["pack", "--silent", "--pack-destination", work], { cwd: root, maxBuffer: 16 << 20 });
    const tarball = (await readdir(work)).find((f) => f.endsWith(".tgz"));
    assert.ok(tarball, "npm pack produced a tarball");

    const consumer = join(work, "consumer");
    await run("mkdir", ["-p", consumer]);
    await writeFile(join(consumer, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
    // Every dependency is in the npm cache after `npm ci`; --prefer-offline avoids the network when it can.
    await run(npm, ["install", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts", join(work, tarball)], {
      cwd: consumer,
      maxBuffer: 16 << 20,
    });

    const script = `
      import { readdirSync } from "node:fs";
      import { ServiceClient, startLocalServer, parseTinkerPath, NotFoundError, downloadCheckpoint } from "tinker-ts";
      const server = await startLocalServer({ port: 0 });
      const service = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey });
      const caps = await service.getServerCapabilities();
      const training = await service.createLoraTrainingClient({ baseModel: "Qwen/Qwen3-8B", rank: 2 });
      const { path } = await training.saveState("packed");
      const parsed = parseTinkerPath(path);
      const dl = await downloadCheckpoint(service.createRestClient(), path, { outputDir: "downloads" });
      const files = readdirSync(dl.destination).sort();
      let notFound = false;
      try { await service.createRestClient().getTrainingRun("no-such-run"); } catch (e) { notFound = e instanceof NotFoundError; }
      await service.close();
      await server.close();
      console.log(JSON.stringify({ models: caps.supported_models.length, id: parsed.checkpointId, notFound, files }));
    `;
    const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script], { cwd: consumer });
    const out = JSON.parse(stdout.trim().split("\n").at(-1) as string) as { models: number; id: string; notFound: boolean; files: string[] };
    assert.deepEqual(out.files, ["adapter_config.json", "adapter_model.safetensors", "checkpoint_complete", "optimizer.safetensors"]);
    assert.ok(out.models >= 2, `supported models: ${out.models}`);
    assert.equal(out.id, "weights/packed");
    assert.equal(out.notFound, true);

    const cli = await run(join(consumer, "node_modules", ".bin", "tinker-ts"), ["checkpoint", "--help"], { cwd: consumer });
    assert.match(cli.stdout, /Usage: tinker-ts checkpoint/);
    const types = await readdir(join(consumer, "node_modules", "tinker-ts", "dist", "src"));
    assert.ok(types.includes("index.d.ts"), "type declarations are shipped");
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});
