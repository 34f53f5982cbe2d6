/**
 * The packed artifact: `npm pack` (which builds dist/), install the tarball into a throwaway project from the npm
 * cache only, then use it as users would: import it from ESM, `require` it from CommonJS (Node ≥ 20.19 loads
 * ESM through `require`, so there is one copy of each class and `instanceof` holds across both), type-check a
 * consumer under `moduleResolution: node10` and `nodenext` (CommonJS), and run the installed CLI.
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
    // No "type": the consumer's .js files are CommonJS, as in most older projects; ESM scripts are .mjs.
    await writeFile(join(consumer, "package.json"), JSON.stringify({ name: "consumer", private: true }));
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
    await writeFile(join(consumer, "esm.mjs"), script);
    const { stdout } = await run(process.execPath, ["esm.mjs"], { cwd: consumer });
    const out = JSON.parse(stdout.trim().split("\n").at(-1) as string) as {
      models: number;
      id: string;
      notFound: boolean;
      files: string[];
    };
    assert.deepEqual(out.files, ["adapter_config.json", "adapter_model.safetensors", "checkpoint_complete", "optimizer.safetensors"]);
    assert.ok(out.models >= 2, `supported models: ${out.models}`);
    assert.equal(out.id, "weights/packed");
    assert.equal(out.notFound, true);

    // CommonJS: require() of the root and of the server subpath; errors are the same classes as through import.
    const cjs = `
      const sdk = require("tinker-ts");
      const { startLocalServer } = require("tinker-ts/server");
      (async () => {
        const server = await startLocalServer({ port: 0 });
        const service = new sdk.ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey });
        let err;
        try { await service.createRestClient().getTrainingRun("no-such-run"); } catch (e) { err = e; }
        const esm = await import("tinker-ts");
        await service.close();
        await server[Symbol.asyncDispose]();
        console.log(JSON.stringify({
          name: err && err.name,
          notFound: err instanceof sdk.NotFoundError,
          tinkerError: err instanceof sdk.TinkerError,
          sameClassAsImport: esm.NotFoundError === sdk.NotFoundError,
          rootStartsServer: typeof sdk.startLocalServer,
        }));
      })().catch((e) => { console.error(e); process.exit(1); });
    `;
    await writeFile(join(consumer, "cjs.js"), cjs);
    const cjsRun = await run(process.execPath, ["cjs.js"], { cwd: consumer });
    assert.deepEqual(JSON.parse(cjsRun.stdout.trim().split("\n").at(-1) as string), {
      name: "NotFoundError",
      notFound: true,
      tinkerError: true,
      sameClassAsImport: true,
      rootStartsServer: "function",
    });

    // TypeScript consumers: `moduleResolution: node10` (top-level "types" + typesVersions for the subpath) and
    // CommonJS under `nodenext`. A @ts-expect-error proves the types are real, not `any`.
    await writeFile(
      join(consumer, "check.ts"),
      [
        `import { NotFoundError, ServiceClient, type Checkpoint } from "tinker-ts";`,
        `import { startLocalServer, type LocalServer } from "tinker-ts/server";`,
        `export async function f(): Promise<Checkpoint[]> {`,
        `  const server: LocalServer = await startLocalServer({ port: 0 });`,
        `  // @ts-expect-error port is a number`,
        `  await startLocalServer({ port: "8080" });`,
        `  const service = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey });`,
        `  try { return (await service.createRestClient().listCheckpoints("r")).checkpoints; }`,
        `  catch (e) { if (e instanceof NotFoundError) return []; throw e; }`,
        `}`,
      ].join("\n"),
    );
    const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
    for (const flags of [
      ["--module", "commonjs", "--moduleResolution", "node10"],
      ["--module", "nodenext", "--moduleResolution", "nodenext"],
    ]) {
      const common = [
        "--noEmit",
        "--strict",
        "--target",
        "es2022",
        "--lib",
        "es2023,esnext.disposable",
        "--types",
        "node",
        "--typeRoots",
        join(root, "node_modules", "@types"),
        "--skipLibCheck",
      ];
      const r = await run(process.execPath, [tsc, ...common, ...flags, "check.ts"], { cwd: consumer }).catch((e: { stdout: string }) => e);
      assert.equal(r.stdout.trim(), "", `tsc ${flags.join(" ")}: ${r.stdout}`);
    }

    const cli = await run(join(consumer, "node_modules", ".bin", "tinker-ts"), ["checkpoint", "--help"], { cwd: consumer });
    assert.match(cli.stdout, /Usage: tinker-ts checkpoint/);
    const types = await readdir(join(consumer, "node_modules", "tinker-ts", "dist", "src"));
    assert.ok(types.includes("index.d.ts"), "type declarations are shipped");
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});
