/**
 * Train, checkpoint, resume: a supervised (cross-entropy) loop that saves its full state (weights + Adam) every
 * few steps, then starts a NEW training client from one of those checkpoints, as a restarted job would, and
 * trains the same steps again. The resumed losses equal the uninterrupted run's, step for step.
 *
 *   npx tinker-ts serve --port 8080                      # in another terminal; prints the two exports below
 *   export TINKER_BASE_URL=http://127.0.0.1:8080 TINKER_API_KEY=tml-local-...
 *   npx tsx examples/train-and-resume.ts [--steps 6] [--save-every 2] [--resume-at 4] [--base-model Qwen/Qwen3-8B]
 *
 * It prints the run id (`run: sess-…:train:0`) whose checkpoints examples/prune-run.ts and
 * examples/download-run.ts work on. Works the same against the Tinker service (TINKER_BASE_URL, TINKER_API_KEY).
 */
import { parseArgs } from "node:util";
import { type AdamParams, type Datum, ServiceClient, type TrainingClient, crossEntropyDatum } from "tinker-ts";

const { values: args } = parseArgs({
  options: {
    steps: { type: "string", default: "6" },
    "save-every": { type: "string", default: "2" },
    "resume-at": { type: "string", default: "4" },
    "base-model": { type: "string", default: "Qwen/Qwen3-8B" },
  },
});
const steps = Number(args.steps);
const saveEvery = Number(args["save-every"]);
const resumeAt = Number(args["resume-at"]);
if (![steps, saveEvery, resumeAt].every(Number.isInteger) || resumeAt % saveEvery !== 0 || resumeAt >= steps || resumeAt < 1) {
  console.error("usage: --steps N --save-every K --resume-at M, where M is a multiple of K and 1 ≤ M < N");
  process.exit(2);
}

const adam: AdamParams = { learning_rate: 0.02, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0, grad_clip_norm: 1 };

/** The batch of a step: a few sentences as byte-level token ids (the local server has no tokenizer; use yours). */
function batchOf(step: number): Datum[] {
  const sentences = ["the quick brown fox", "jumps over the lazy dog", "checkpoints make training resumable"];
  return sentences.map((s, i) => crossEntropyDatum([...Buffer.from(`${s} ${(step + i) % 3}`, "utf8")]));
}

/** One training step: forward-backward and Adam, pipelined (both are sent before either is awaited). */
async function trainStep(training: TrainingClient, step: number): Promise<number> {
  const fb = training.forwardBackward(batchOf(step), "cross_entropy");
  const opt = training.optimStep(adam);
  const loss = (await fb).metrics["loss:sum"] as number;
  await opt;
  return loss;
}

await using service = new ServiceClient();
const training = await service.createLoraTrainingClient({ baseModel: args["base-model"], rank: 8 });
console.log(`run: ${training.modelId}`);

const losses = new Map<number, number>();
const saved = new Map<number, string>();
for (let step = 1; step <= steps; step++) {
  losses.set(step, await trainStep(training, step));
  let line = `step ${step}  loss ${losses.get(step)!.toFixed(6)}`;
  if (step % saveEvery === 0) {
    // Full state: weights AND optimizer moments; a week's TTL (omit ttlSeconds to keep it until deleted).
    const { path } = await training.saveState(`step-${String(step).padStart(4, "0")}`, { ttlSeconds: 7 * 86_400 });
    saved.set(step, path);
    line += `  saved ${path}`;
  }
  console.log(line);
}

// "Later, in another process": a new client from the checkpoint, with its optimizer state.
const from = saved.get(resumeAt)!;
console.log(`resuming from ${from}`);
const resumed = await service.createTrainingClientFromStateWithOptimizer(from);
let same = true;
for (let step = resumeAt + 1; step <= steps; step++) {
  const loss = await trainStep(resumed, step);
  const match = loss === losses.get(step);
  same &&= match;
  console.log(
    `step ${step}  loss ${loss.toFixed(6)}  resumed (uninterrupted: ${losses.get(step)!.toFixed(6)}) ${match ? "same" : "DIFFERENT"}`,
  );
}
console.log(same ? "the resumed run continues exactly like the uninterrupted one" : "the resumed run differs");
await resumed.unload();
process.exitCode = same ? 0 : 1;
