// Compiled by `tsc --noEmit` (not run): the README's code samples must keep type-checking against the API.
import {
  CheckpointLedger,
  RollingCheckpoint,
  ServiceClient,
  crossEntropyDatum,
  downloadCheckpoint,
  planCheckpointPruning,
  pruneCheckpoints,
  resumeOrStart,
  saveAndRecord,
  startLocalServer,
  rlDatum,
  TrainingClientStoppedError,
  type Datum,
  type TrainingClient,
} from "../src/index.js";
import { DEFAULT_SUPPORTED_MODELS, type FaultRule, startLocalServer as startServerEntry } from "../src/server/index.js";

export async function quickStart(): Promise<void> {
  await using service = new ServiceClient();
  const training = await service.createLoraTrainingClient({ baseModel: "Qwen/Qwen3-8B", rank: 16 });
  const batch = [crossEntropyDatum([464, 3290, 318, 257, 922]), crossEntropyDatum([40, 588, 257, 3797])];
  const fb = training.forwardBackward(batch, "cross_entropy");
  const step = training.optimStep({ learning_rate: 1e-4 });
  const save = training.saveState("step-0001", { ttlSeconds: 7 * 86_400 });
  console.log((await fb).metrics["loss:sum"], (await save).path);
  await step;
  const resumed = await service.createTrainingClientFromStateWithOptimizer((await save).path);
  void resumed;
}

export async function management(service: ServiceClient, path: string, runId: string, epoch: number, batch: number): Promise<void> {
  const rest = service.createRestClient();
  for await (const ckpt of rest.iterUserCheckpoints({ pageSize: 100 })) {
    console.log(ckpt.tinker_path, ckpt.size_bytes, ckpt.expires_at ?? "never");
  }
  const page = await rest.listUserCheckpoints({ limit: 20, offset: 0 });
  void page.cursor?.total_count;
  await rest.listCheckpoints(runId);
  await rest.getTrainingRun(runId);
  for await (const r of rest.iterTrainingRuns()) console.log(r.training_run_id);
  await rest.getWeightsInfoByTinkerPath(path);
  await rest.setCheckpointTtlFromTinkerPath(path, 30 * 86_400);
  await rest.publishCheckpointFromTinkerPath(path);
  await rest.deleteCheckpointFromTinkerPath(path);
  const { url, expires } = await rest.getCheckpointArchiveUrlFromTinkerPath(path);
  void url;
  void expires;
  const sessions = await rest.listSessions({ limit: 20 });
  await rest.getSession(sessions.sessions[0]!);

  const result = await downloadCheckpoint(rest, "tinker://run-id/weights/0001", {
    outputDir: "./checkpoints",
    force: false,
    onProgress: ({ phase, bytes, totalBytes }) => console.log(phase, bytes, totalBytes),
  });
  void result.destination;

  const ledger = CheckpointLedger.open("runs/my-run/checkpoints.jsonl");
  const { training, mode } = await resumeOrStart(service, {
    ledger,
    baseModel: "Qwen/Qwen3-8B",
    rank: 16,
    warmStartPath: process.env["WARM_START"],
  });
  void mode;
  await saveAndRecord(training, ledger, `epoch-${epoch}`, { extra: { epoch, batch }, sampler: true });

  const plan = await planCheckpointPruning(rest, runId, { keepLast: 3 });
  console.log(plan.delete.length, plan.bytes);
  const { deleted, failed } = await pruneCheckpoints(rest, runId, { keepLast: 3, olderThan: new Date(Date.now() - 7 * 86_400_000) });
  void deleted;
  void failed;
  const rolling = new RollingCheckpoint(training, rest, { prefix: "rolling", ttlSeconds: 2 * 86_400 });
  await rolling.save();

  const server = await startLocalServer({ port: 0, dataDir: "./.tinker/test" });
  await server.close();
}

export async function sampling(service: ServiceClient): Promise<void> {
  const training = await service.createLoraTrainingClient({ baseModel: "Qwen/Qwen3-8B", rank: 16 });
  const sampler = await training.saveWeightsAndGetSamplingClient({ maxConcurrentRequests: 50 });
  const named = await service.createSamplingClient({
    modelPath: (await training.saveWeightsForSampler("final")).path,
    maxConcurrentRequests: 50,
  });
  const base = await service.createSamplingClient({ baseModel: "Qwen/Qwen3-8B" });
  const res = await sampler.sample(
    [151644, 872, 198],
    4,
    { max_tokens: 32, temperature: 0.7, top_p: 0.95, seed: 1 },
    { includePromptLogprobs: true, topkPromptLogprobs: 5 },
  );
  for (const s of res.sequences) console.log(s.stop_reason, s.tokens, s.logprobs);
  const lp: (number | null)[] | null = res.prompt_logprobs;
  const topk: ([number, number][] | null)[] | null = res.topk_prompt_logprobs;
  const scored: (number | null)[] = await sampler.computeLogprobs([151644, 872, 198]);
  const info = await service.createRestClient().getSampler(sampler.samplingSessionId);
  void [named, base, lp, topk, scored, info.base_model, info.model_path];
}

export async function lossesAndFailStop(
  service: ServiceClient,
  start: TrainingClient,
  batch: Datum[],
  promptTokens: number[],
  completionTokens: number[],
  samplerLogprobs: number[],
  advantage: number,
  lastCheckpointPath: string,
): Promise<void> {
  let training = start;
  const datum = rlDatum([...promptTokens, ...completionTokens], {
    logprobs: [...promptTokens.map(() => 0), ...samplerLogprobs],
    advantages: [...promptTokens.map(() => 0), ...completionTokens.map(() => advantage)],
  });
  const out = await training.forwardBackward([datum], "ppo", { lossFnConfig: { clip_low_threshold: 0.8, clip_high_threshold: 1.2 } });
  const before = await training.forward([datum], "ppo");
  void out;
  void before;
  const custom = await training.forwardBackwardCustom(batch, (logprobs) => {
    let loss = 0;
    const grad = logprobs.map((lp, i) => {
      const w = batch[i]!.loss_fn_inputs["weights"]!.data;
      lp.forEach((v, j) => {
        loss -= w[j]! * v;
      });
      return Float32Array.from(w, (x) => -x);
    });
    return { loss, grad, metrics: { my_loss: loss } };
  });
  void custom;
  try {
    await training.optimStep({ learning_rate: 1e-4 });
  } catch (err) {
    if (!(err instanceof TrainingClientStoppedError)) throw err;
    console.error(`stopped by ${err.failedOperation} (seq_id ${err.failedSeqId}); resuming`);
    training = await service.createTrainingClientFromStateWithOptimizer(lastCheckpointPath);
  }
  const server = await startLocalServer({ clientConfig: { fwdbwd_max_chunk_len: 8 } });
  await server.close();
}

// "Using the package": the `tinker-ts/server` entry point (imported here by its source path).
export async function serverEntry(): Promise<void> {
  await using server = await startServerEntry({ dataDir: "./.tinker-local" });
  const rule: FaultRule = { path: "/api/v1/forward_backward", status: 503, times: 1 };
  server.setFaults([rule]);
  void DEFAULT_SUPPORTED_MODELS;
}

export async function authentication(service: ServiceClient): Promise<void> {
  const rest = service.createRestClient();
  const me = await rest.whoami(); // { user_urn, email }: decoded from the JWT in use, no request once it is held
  void me;
}
