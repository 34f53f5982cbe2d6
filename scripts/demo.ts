/**
 * `npm run demo`: the training-persistence workflow end to end, on the embedded local server (or on the
 * server named by TINKER_BASE_URL / TINKER_API_KEY when both are set).
 *
 * 1. train a few steps, save a named checkpoint;
 * 2. keep training, recording the losses;
 * 3. resume from the checkpoint WITH optimizer state: the same losses, bit for bit;
 * 4. warm-start from it with weights only: the losses diverge after the first step;
 * 5. manage the checkpoint: inspect, set a TTL, publish, download with progress, delete.
 *
 * Exits 1 if the resume proof fails.
 */
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ServiceClient,
  crossEntropyDatum,
  downloadCheckpoint,
  startLocalServer,
  type AdamParams,
  type Datum,
  type LocalServer,
  type TrainingClient,
} from "../src/index.js";

const BASE_MODEL = "Qwen/Qwen3-8B";
const ADAM: AdamParams = { learning_rate: 0.02, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0, grad_clip_norm: 1 };
const FIRST = 4; // steps before the checkpoint
const THEN = 4; // steps after it

/** A toy corpus: byte-level tokens of a few sentences, one batch per step. */
const SENTENCES = [
  "checkpoints capture every operation with a lower seq_id",
  "resume with optimizer state to continue exactly",
  "weights only resets the adam moments",
  "the local server trains a tiny real model",
];
function batch(step: number): Datum[] {
  return SENTENCES.map((s, i) => {
    const text = `${s} #${(step + i) % 3}`;
    return crossEntropyDatum([...Buffer.from(text, "utf8")]);
  });
}

async function train(training: TrainingClient, from: number, count: number, label: string): Promise<number[]> {
  const losses: number[] = [];
  for (let step = from; step < from + count; step++) {
    // Pipelined: both operations are submitted before either is awaited; seq_ids keep them in order.
    const fb = training.forwardBackward(batch(step), "cross_entropy");
    const opt = training.optimStep(ADAM);
    const loss = (await fb).metrics["loss:sum"] as number;
    await opt;
    losses.push(loss);
    console.log(`  ${label} step ${String(step + 1).padStart(2)}  loss ${loss.toFixed(6)}`);
  }
  return losses;
}

function formatBytes(n: number): string {
  return n < 1024 ? `${n} B` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

async function main(): Promise<number> {
  const external = process.env["TINKER_BASE_URL"] !== undefined && process.env["TINKER_API_KEY"] !== undefined;
  let server: LocalServer | undefined;
  const work = await mkdtemp(join(tmpdir(), "tinker-demo-"));
  try {
    if (!external) {
      server = await startLocalServer({ port: 0, dataDir: join(work, "server") });
      console.log(`Local Tinker server on ${server.baseUrl} (data in ${server.dataDir})\n`);
    } else {
      console.log(`Using the server at ${process.env["TINKER_BASE_URL"]}\n`);
    }
    await using service = new ServiceClient(server === undefined ? {} : { baseUrl: server.baseUrl, apiKey: server.apiKey });

    console.log(`1. Train ${FIRST} steps on ${BASE_MODEL} (LoRA rank 8) and save a checkpoint`);
    const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 8, seed: 1 });
    await train(training, 0, FIRST, "original");
    const save = training.saveState("demo-checkpoint", { ttlSeconds: 7 * 86_400 });
    const { path } = await save;
    console.log(`  saved ${path} (seq_id ${save.seqId}: it holds the ${save.seqId - 1} operations before it)\n`);

    console.log(`2. Keep training ${THEN} more steps`);
    const continued = await train(training, FIRST, THEN, "original");

    console.log(`\n3. Resume from the checkpoint with optimizer state (createTrainingClientFromStateWithOptimizer)`);
    const resumed = await service.createTrainingClientFromStateWithOptimizer(path);
    const full = await train(resumed, FIRST, THEN, "resumed ");

    console.log(`\n4. Warm-start from the checkpoint with weights only (createTrainingClientFromState)`);
    const warm = await service.createTrainingClientFromState(path);
    const weightsOnly = await train(warm, FIRST, THEN, "weights ");

    const identical = full.every((l, i) => Object.is(l, continued[i]));
    const diverged = weightsOnly.slice(1).some((l, i) => !Object.is(l, continued[i + 1]));
    console.log("\n   step  continued        with optimizer   weights only");
    for (let i = 0; i < THEN; i++) {
      console.log(
        `   ${String(FIRST + i + 1).padStart(4)}  ${continued[i]?.toFixed(9)}  ${full[i]?.toFixed(9)}  ${weightsOnly[i]?.toFixed(9)}`,
      );
    }
    console.log(`   with optimizer: ${identical ? "identical to the uninterrupted run, bit for bit" : "DIFFERENT (resume failed)"}`);
    console.log(`   weights only:   ${diverged ? "diverges after the first step (fresh Adam moments)" : "did not diverge (unexpected)"}\n`);

    console.log("5. Manage the checkpoint");
    const rest = service.createRestClient();
    const info = await rest.getWeightsInfoByTinkerPath(path);
    console.log(`  weights info: base ${info.base_model}, LoRA rank ${info.lora_rank}`);
    const listed = await rest.listCheckpoints(training.modelId);
    for (const c of listed.checkpoints) {
      console.log(`  ${c.tinker_path}  ${c.checkpoint_type}  ${formatBytes(c.size_bytes ?? 0)}  expires ${c.expires_at ?? "never"}`);
    }
    await rest.setCheckpointTtlFromTinkerPath(path, 30 * 86_400);
    await rest.publishCheckpointFromTinkerPath(path);
    console.log("  set a 30-day TTL and published it");
    let lastPhase = "";
    const result = await downloadCheckpoint(rest, path, {
      outputDir: join(work, "downloads"),
      onProgress: (p) => {
        if (p.phase !== lastPhase) {
          lastPhase = p.phase;
          console.log(`  download: ${p.phase} ${formatBytes(p.bytes)}${p.totalBytes === null ? "" : ` of ${formatBytes(p.totalBytes)}`}`);
        }
      },
    });
    console.log(`  downloaded to ${result.destination}: ${(await readdir(result.destination)).sort().join(", ")}`);
    await rest.unpublishCheckpointFromTinkerPath(path);
    await rest.deleteCheckpointFromTinkerPath(path);
    console.log(`  unpublished and deleted ${path}`);

    console.log("\n6. Save the trained weights for sampling and sample from that checkpoint");
    const sampler = await service.createSamplingClient({ modelPath: (await training.saveWeightsForSampler("demo-sampler")).path });
    console.log(`  sampler ${sampler.samplingSessionId} on ${sampler.modelPath}`);
    const prompt = [151644, 872, 198];
    const sampled = await sampler.sample(prompt, 2, { max_tokens: 6, temperature: 0.7, seed: 42 });
    sampled.sequences.forEach((seq, i) => {
      const pairs = seq.tokens.map((t, j) => `${t} (${seq.logprobs?.[j]?.toFixed(2)})`).join("  ");
      console.log(`  sample ${i} after [${prompt.join(", ")}], ${seq.stop_reason}: ${pairs}`);
    });
    const scored = await sampler.computeLogprobs([...prompt, ...sampled.sequences[0]!.tokens]);
    const same = sampled.sequences[0]!.logprobs!.every((lp, j) => lp === scored[prompt.length + j]);
    console.log(`  computeLogprobs of sample 0 ${same ? "gives the same logprobs" : "DIFFERS"}`);

    await Promise.all([training.unload(), resumed.unload(), warm.unload()]);
    console.log(identical && diverged ? "\nDemo finished: resume with optimizer state is exact." : "\nDemo FAILED: see above.");
    return identical && diverged ? 0 : 1;
  } finally {
    await server?.close();
    await rm(work, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? `${err.name}: ${err.message}` : err);
    process.exit(1);
  },
);
