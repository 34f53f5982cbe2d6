/**
 * Benchmark of futures against the local server (run in a child process, as a real service would be).
 *
 *   npm run bench:futures            (writes bench-results/futures.json and prints a summary)
 *
 * (a) Resolution delay: for a few hundred futures, the time between the server completing the operation and
 *     the client's `await` resolving. The client is already long-polling when the result appears, so this is
 *     the cost of waking the poll, one HTTP response and the client's parsing. Target: median ≤ 5 ms.
 * (b) Pipelining: the wall time of 200 training operations submitted before any is awaited, against the
 *     server's own processing time for them: the time its thread was busy during the run (event-loop
 *     utilisation: executing the operations and handling their HTTP requests). Target: wall ≤ 1.1 × that.
 *     Also reported: the ratio to the execution time alone (the sum of the operations' run times).
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
  const work = await mkdtemp(join(tmpdir(), "tinker-bench-futures-"));
  const results: Record<string, unknown> = resultHeader();
  try {
    // (a) resolution delay
    {
      const server = await startChild(join(work, "a"), 15);
      const service = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey });
      const training = await service.createLoraTrainingClient({ baseModel: "Qwen/Qwen3-8B", rank: 4 });
      const delays: number[] = [];
      const rounds = 30;
      const perRound = 10;
      for (let r = 0; r < rounds; r++) {
        const futures = Array.from({ length: perRound }, () => training.optimStep({ learning_rate: 1e-3 }));
        const resolved = await Promise.all(futures.map((f) => Promise.resolve(f).then(() => now())));
        const ids = await Promise.all(futures.map((f) => f.requestId));
        await settleEvents(server.ops, ids);
        ids.forEach((id, i) => {
          const op = server.ops.get(id);
          if (op) delays.push((resolved[i] as number) - op.completedAt);
        });
      }
      await service.close();
      server.proc.disconnect();
      delays.sort((x, y) => x - y);
      results["resolution_delay_ms"] = {
        futures: delays.length,
        median: +quantile(delays, 0.5).toFixed(3),
        p99: +quantile(delays, 0.99).toFixed(3),
        max: +(delays.at(-1) as number).toFixed(3),
        target_median_ms: 5,
        meets_target: quantile(delays, 0.5) <= 5,
      };
    }
    // (b) pipelined wall time vs server processing time
    {
      const server = await startChild(join(work, "b"), 0);
      const service = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey });
      const training = await service.createLoraTrainingClient({ baseModel: "Qwen/Qwen3-8B", rank: 32 });
      const batch = Array.from({ length: 16 }, (_, i) => crossEntropyDatum(Array.from({ length: 129 }, (_, j) => (i * 37 + j * 11) % 256)));
      // Warm up the server's JIT before measuring.
      for (let i = 0; i < 5; i++) {
        await training.forwardBackward(batch, "cross_entropy");
        await training.optimStep({ learning_rate: 1e-3 });
      }
      const ops = 200;
      markBusy(server);
      const start = now();
      const futures = [];
      for (let i = 0; i < ops / 2; i++) {
        futures.push(training.forwardBackward(batch, "cross_entropy"));
        futures.push(training.optimStep({ learning_rate: 1e-3 }));
      }
      await Promise.all(futures);
      const wall = now() - start;
      const busy = await measureBusy(server);
      const ids = await Promise.all(futures.map((f) => f.requestId));
      await settleEvents(server.ops, ids);
      const events = ids.map((id) => server.ops.get(id)).filter((e): e is OpEvent => e !== undefined);
      const serverBusy = events.reduce((sum, e) => sum + (e.completedAt - e.startedAt), 0);
      const gaps = events
        .slice(1)
        .map((e, i) => e.startedAt - (events[i] as OpEvent).completedAt)
        .sort((x, y) => x - y);
      await service.close();
      server.proc.disconnect();
      results["pipelined_200_ops"] = {
        operations: events.length,
        wall_ms: +wall.toFixed(1),
        server_busy_ms: +busy.activeMs.toFixed(1),
        ratio: +(wall / busy.activeMs).toFixed(3),
        target_ratio: 1.1,
        meets_target: wall / busy.activeMs <= 1.1,
        server_execution_ms: +serverBusy.toFixed(1),
        ratio_to_execution_only: +(wall / serverBusy).toFixed(3),
        server_idle_between_ops_ms: {
          median: +quantile(gaps, 0.5).toFixed(3),
          p99: +quantile(gaps, 0.99).toFixed(3),
          total: +gaps.reduce((a, b) => a + b, 0).toFixed(1),
        },
        batch: "forward_backward on 16 x 128 tokens (rank 32) alternating with optim_step",
      };
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  await writeResult("futures.json", JSON.stringify(results, null, 2) + "\n");
  console.log(JSON.stringify(results, null, 2));
  console.log("wrote bench-results/futures.json");
}

runBench(main);
