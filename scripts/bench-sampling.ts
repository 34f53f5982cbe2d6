/**
 * Benchmark of sampling against the local server (run in a child process, as a real service would be).
 *
 *   npm run bench:sampling           (writes bench-results/sampling.json and .md, and prints a summary)
 *
 * 500 `sample` requests of 16 new tokens each (Qwen3 vocabulary, a trained rank-8 sampler checkpoint, seeds 0..499)
 * are submitted at once through one SamplingClient (default concurrency bound, 400) and awaited together.
 *
 * (a) Pipelining: the wall time from the first submit to the last resolved `await`, against the server's busy time
 *     during the run (event-loop utilisation of its thread: sampling and handling the HTTP requests). Target:
 *     wall ≤ 1.1 × busy. Also reported: the ratio to the sampling time alone (the sum of the requests' run times).
 * (b) Resolution delay: per request, the time between the server completing the sample and the client's `await`
 *     resolving (the long poll's wake-up, one protobuf response, decoding). Target: median ≤ 5 ms; p99 reported.
 *
 * Timestamps from both processes are epoch milliseconds from `performance.timeOrigin + performance.now()`.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  markBusy,
  measureBusy,
  now,
  type OpEvent,
  quantile,
  resultHeader,
  runBench,
  settleEvents,
  startChild,
  writeResult,
} from "./bench-harness.js";

async function main(): Promise<void> {
  const { ServiceClient, crossEntropyDatum } = await import("../src/index.js");
  const work = await mkdtemp(join(tmpdir(), "tinker-bench-sampling-"));
  const REQUESTS = 500;
  const NEW_TOKENS = 16;
  const results: Record<string, unknown> = resultHeader();
  try {
    const server = await startChild(join(work, "server"));
    const service = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey });
    const training = await service.createLoraTrainingClient({ baseModel: "Qwen/Qwen3-8B", rank: 8 });
    await training.forwardBackward([crossEntropyDatum([151644, 872, 198, 9707, 11, 1246, 525, 498, 30, 151645])], "cross_entropy");
    await training.optimStep({ learning_rate: 1e-2 });
    const sampler = await training.saveWeightsAndGetSamplingClient();
    const prompt = [151644, 872, 198, 9707];
    const params = (seed: number) => ({ max_tokens: NEW_TOKENS, temperature: 0.8, seed, stop: [] as number[] });
    // Warm up the server's and the client's JIT before measuring.
    for (let i = 0; i < 3; i++)
      await Promise.all(Array.from({ length: 50 }, (_, j) => sampler.sample(prompt, 1, params(10_000 + i * 50 + j))));
    markBusy(server);
    const start = now();
    const futures = Array.from({ length: REQUESTS }, (_, i) => sampler.sample(prompt, 1, params(i)));
    const resolved = await Promise.all(
      futures.map((f) => Promise.resolve(f).then((r) => ({ at: now(), tokens: r.sequences[0]!.tokens.length }))),
    );
    const wall = now() - start;
    const busy = await measureBusy(server);
    const ids = await Promise.all(futures.map((f) => f.requestId));
    await settleEvents(server.ops, ids);
    const events = ids.map((id) => server.ops.get(id)).filter((e): e is OpEvent => e !== undefined);
    const execution = events.reduce((sum, e) => sum + (e.completedAt - e.startedAt), 0);
    const delayOf = (awaitedOnly: boolean): number[] =>
      ids
        .map((id, i) => {
          const op = server.ops.get(id);
          return op === undefined || (awaitedOnly && op.awaited !== true) ? undefined : resolved[i]!.at - op.completedAt;
        })
        .filter((d): d is number => d !== undefined)
        .sort((x, y) => x - y);
    const delays = delayOf(false);
    const awaitedDelays = delayOf(true);
    await service.close();
    server.proc.disconnect();
    results["sampling_500_requests"] = {
      requests: events.length,
      new_tokens_each: NEW_TOKENS,
      all_full_length: resolved.every((r) => r.tokens === NEW_TOKENS),
      concurrency_bound: sampler.maxConcurrentRequests,
      wall_ms: +wall.toFixed(1),
      server_busy_ms: +busy.activeMs.toFixed(1),
      ratio: +(wall / busy.activeMs).toFixed(3),
      target_ratio: 1.1,
      meets_target: wall / busy.activeMs <= 1.1,
      server_sampling_ms: +execution.toFixed(1),
      ratio_to_sampling_only: +(wall / execution).toFixed(3),
      requests_per_second: +((REQUESTS / wall) * 1000).toFixed(1),
    };
    results["resolution_delay_ms"] = {
      requests: delays.length,
      median: +quantile(delays, 0.5).toFixed(3),
      p99: +quantile(delays, 0.99).toFixed(3),
      max: +(delays.at(-1) as number).toFixed(3),
      target_median_ms: 5,
      meets_target: quantile(delays, 0.5) <= 5,
      poll_already_waiting: {
        requests: awaitedDelays.length,
        median: awaitedDelays.length ? +quantile(awaitedDelays, 0.5).toFixed(3) : null,
        p99: awaitedDelays.length ? +quantile(awaitedDelays, 0.99).toFixed(3) : null,
      },
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  await writeResult("sampling.json", JSON.stringify(results, null, 2) + "\n");
  const a = results["sampling_500_requests"] as Record<string, number | boolean>;
  const b = results["resolution_delay_ms"] as Record<string, number | boolean>;
  const w = (results["resolution_delay_ms"] as { poll_already_waiting: Record<string, number | null> }).poll_already_waiting;
  const md = [
    "# Sampling benchmark (`npm run bench:sampling`)",
    "",
    `${results["date"]}, Node ${results["node"]}, ${results["machine"]}; server in a child process; ${a["requests"]} concurrent \`sample\` requests of ${a["new_tokens_each"]} new tokens (Qwen3 vocabulary, concurrency bound ${a["concurrency_bound"]}).`,
    "",
    "| measure | value | target |",
    "|---|---|---|",
    `| wall time | ${a["wall_ms"]} ms | |`,
    `| server busy time (event-loop utilisation) | ${a["server_busy_ms"]} ms | |`,
    `| wall / busy | ${a["ratio"]} | ≤ 1.1 ${a["meets_target"] ? "(met)" : "(NOT met)"} |`,
    `| server sampling time alone | ${a["server_sampling_ms"]} ms (wall / sampling ${a["ratio_to_sampling_only"]}) | |`,
    `| throughput | ${a["requests_per_second"]} requests/s | |`,
    `| completion → await resolved, median | ${b["median"]} ms | ≤ 5 ms ${b["meets_target"] ? "(met)" : "(NOT met)"} |`,
    `| completion → await resolved, p99 / max | ${b["p99"]} / ${b["max"]} ms | |`,
    `| same, only samples whose poll was already waiting (${w["requests"]} of ${b["requests"]}): median / p99 | ${w["median"]} / ${w["p99"]} ms | |`,
    "",
    "A sample can complete before the client has even read its submit answer (the server starts it as soon as it is",
    "queued, while the client is still sending the other submits); its delay then includes that turnaround. The last",
    "row leaves those out: it is the cost of waking a waiting long poll, one protobuf response and decoding.",
    "",
  ].join("\n");
  await writeResult("sampling.md", md);
  console.log(JSON.stringify(results, null, 2));
  console.log("wrote bench-results/sampling.json and bench-results/sampling.md");
}

runBench(main);
