/**
 * The fault soak (issue 12): trains against the local server while it injects ~20 % faults on every endpoint
 * (5xx, 429 with Retry-After, 408, dropped connections, and answers lost after the work was done), with the
 * SDK's DEFAULT settings, for several fault seeds. Every run must complete, and its losses, final weights and
 * optimizer state must be byte-identical to a fault-free run; no operation may be lost or run twice.
 *
 * ```text
 * npm run soak                      # 100 steps, a checkpoint every 20, seeds 1 2 3
 * npm run soak -- --quick           # 30 steps, a checkpoint every 10, seeds 1 2 (for CI)
 * npm run soak -- --steps 50 --every 10 --seeds 4,5 --fault-rate 0.3
 * ```
 *
 * Exits 1 when any run differs, loses or doubles an operation, or fails.
 */
import { createHash } from "node:crypto";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { ServiceClient, crossEntropyDatum, downloadCheckpoint, startLocalServer, type Datum, type FaultRule } from "../src/index.js";

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    steps: { type: "string" },
    every: { type: "string" },
    seeds: { type: "string" },
    "fault-rate": { type: "string" },
  },
});
const quick = values.quick === true;
const STEPS = Number(values.steps ?? (quick ? 30 : 100));
const EVERY = Number(values.every ?? (quick ? 10 : 20));
const SEEDS = (values.seeds ?? (quick ? "1,2" : "1,2,3")).split(",").map(Number);
const RATE = Number(values["fault-rate"] ?? 0.2);
const BASE_MODEL = "Qwen/Qwen3-8B";
const ADAM = { learning_rate: 0.02, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0, grad_clip_norm: 0 };
/** Files of a checkpoint that hold the training state (metadata.json holds ids and times, which differ). */
const STATE_FILES = ["adapter_model.safetensors", "optimizer.safetensors", "adapter_config.json"];

function batch(step: number): Datum[] {
  return Array.from({ length: 4 }, (_, i) => crossEntropyDatum(Array.from({ length: 12 }, (_, j) => (step * 31 + i * 17 + j * 7) % 256)));
}

/**
 * Fault rules firing on about `rate` of all requests, split over the kinds a network and a busy service
 * produce. Each rule draws from its own seeded stream, so a seed reproduces its faults.
 */
function faultRules(seed: number, rate: number): FaultRule[] {
  const kinds: Array<Omit<FaultRule, "probability" | "seed">> = [
    { status: 503 },
    { status: 500 },
    { status: 429, retryAfter: 0.2 },
    { status: 408 },
    { drop: true },
    { loseResponse: true },
  ];
  // Independent rules of probability p each fire on 1 − (1 − p)^k of requests.
  const p = 1 - (1 - rate) ** (1 / kinds.length);
  return kinds.map((k, i) => ({ ...k, probability: p, seed: seed * 1000 + i }));
}

interface RunResult {
  losses: number[];
  state: Record<string, string>;
  operations: Map<string, number>;
  requests: number;
  faults: number;
  retries: number;
  ms: number;
}

async function run(seed: number | undefined): Promise<RunResult> {
  const started = performance.now();
  let requests = 0;
  let retries = 0;
  const operations = new Map<string, number>();
  const count = (key: string): void => {
    operations.set(key, (operations.get(key) ?? 0) + 1);
  };
  const server = await startLocalServer({
    ...(seed === undefined ? {} : { faults: faultRules(seed, RATE) }),
    onRequest: () => requests++,
    onOperation: (e) => count(e.type),
  });
  const work = await mkdtemp(path.join(tmpdir(), "tinker-soak-"));
  // Default settings: only the connection, a quiet logger and a retry counter.
  const service = new ServiceClient({
    baseUrl: server.baseUrl,
    apiKey: server.apiKey,
    logger: { warn: () => undefined },
    onRetry: () => retries++,
  });
  try {
    const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4, seed: 7 });
    const losses: number[] = [];
    const saves: Promise<unknown>[] = [];
    for (let s = 0; s < STEPS; s++) {
      const fb = training.forwardBackward(batch(s), "cross_entropy");
      const step = training.optimStep(ADAM);
      if ((s + 1) % EVERY === 0) saves.push(Promise.resolve(training.saveState(`step-${s + 1}`)));
      losses.push((await fb).metrics["loss:sum"] as number);
      await step;
    }
    await Promise.all(saves);
    const { path: finalPath } = await training.saveState("final");
    const rest = service.createRestClient();
    const { destination } = await downloadCheckpoint(rest, finalPath, { outputDir: work });
    const state: Record<string, string> = {};
    const present = new Set(await readdir(destination));
    for (const name of STATE_FILES) {
      if (present.has(name))
        state[name] = createHash("sha256")
          .update(await readFile(path.join(destination, name)))
          .digest("hex");
    }
    const sessions = await rest.listSessions({ limit: 1000 });
    operations.set("Session", sessions.sessions.length);
    const checkpoints = await rest.listCheckpoints(training.modelId);
    operations.set("Checkpoint", checkpoints.checkpoints.length);
    return { losses, state, operations, requests, faults: server.faultsInjected, retries, ms: performance.now() - started };
  } finally {
    await service.close();
    await server.close();
    await rm(work, { recursive: true, force: true });
  }
}

function compareOperations(expected: Map<string, number>, got: Map<string, number>): { lost: number; doubled: number; detail: string[] } {
  let lost = 0;
  let doubled = 0;
  const detail: string[] = [];
  for (const key of new Set([...expected.keys(), ...got.keys()])) {
    const e = expected.get(key) ?? 0;
    const g = got.get(key) ?? 0;
    if (g < e) lost += e - g;
    if (g > e) doubled += g - e;
    if (g !== e) detail.push(`${key}: ${g} (expected ${e})`);
  }
  return { lost, doubled, detail };
}

const total = performance.now();
console.log(`soak: ${STEPS} steps, a checkpoint every ${EVERY}, fault rate ${RATE}, seeds ${SEEDS.join(", ")}; default SDK settings`);
const reference = await run(undefined);
console.log(`fault-free   ${(reference.ms / 1000).toFixed(1)} s, ${reference.requests} requests, final loss ${reference.losses.at(-1)}`);
let failed = false;
for (const seed of SEEDS) {
  let result: RunResult;
  try {
    result = await run(seed);
  } catch (err) {
    failed = true;
    console.log(`seed ${seed}: FAILED: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
    continue;
  }
  const ops = compareOperations(reference.operations, result.operations);
  const lossesSame = result.losses.length === reference.losses.length && result.losses.every((l, i) => Object.is(l, reference.losses[i]));
  const stateSame = JSON.stringify(result.state) === JSON.stringify(reference.state) && Object.keys(result.state).length >= 2;
  const ok = lossesSame && stateSame && ops.lost === 0 && ops.doubled === 0;
  if (!ok) failed = true;
  console.log(
    `seed ${seed}: ${ok ? "ok" : "DIFFERS"}  ${(result.ms / 1000).toFixed(1)} s, requests ${result.requests}, faults injected ${result.faults}, retries ${result.retries}, ` +
      `operations lost ${ops.lost}, doubled ${ops.doubled}; losses ${lossesSame ? "identical" : "DIFFER"}, final weights+optimizer ${stateSame ? "identical" : "DIFFER"}` +
      (ops.detail.length > 0 ? ` [${ops.detail.join("; ")}]` : ""),
  );
}
console.log(`soak: ${failed ? "FAILED" : "passed"} in ${((performance.now() - total) / 1000).toFixed(1)} s`);
process.exitCode = failed ? 1 : 0;
