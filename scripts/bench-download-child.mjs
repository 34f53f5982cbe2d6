// SDK side of scripts/bench-download.ts: one downloadCheckpoint in a fresh process, from the compiled build
// (dist/, made by `npm run build`) under plain node, reporting wall time and peak RSS over IPC.
import { ServiceClient, downloadCheckpoint } from "../dist/src/index.js";

const now = () => performance.now();
const mb = (bytes) => bytes / 1e6;
const round = (x, digits = 2) => +x.toFixed(digits);
const send = (m) => new Promise((resolve) => process.send?.(m, undefined, {}, () => resolve()) ?? resolve());

await send({
  kind: "ready",
  baselineRssMB: round(mb(process.memoryUsage().rss), 1),
  baselineMaxRssMB: round(mb(process.resourceUsage().maxRSS * 1024), 1),
});
process.once("message", (req) => {
  void (async () => {
    const service = new ServiceClient({ baseUrl: req.baseUrl, apiKey: req.apiKey });
    try {
      const rest = service.createRestClient();
      // A first REST call warms the client stack (JIT, zod), so its cost is told apart from the transfer's.
      await rest.listUserCheckpoints({ limit: 1 });
      const warmMaxRssMB = round(mb(process.resourceUsage().maxRSS * 1024), 1);
      const marks = {};
      let peakAfterDownload = 0;
      const start = now();
      const result = await downloadCheckpoint(rest, req.tinkerPath, {
        outputDir: req.outputDir,
        ...(req.phases
          ? {
              onProgress: (p) => {
                if (p.phase !== "download" && marks[p.phase] === undefined) {
                  marks[p.phase] = now();
                  if (p.phase === "extract") peakAfterDownload = process.resourceUsage().maxRSS * 1024;
                }
              },
            }
          : {}),
      });
      const end = now();
      const peakRssMB = round(mb(process.resourceUsage().maxRSS * 1024), 1);
      const reply = {
        kind: "result",
        wallS: (end - start) / 1000,
        bytes: result.bytes,
        destination: result.destination,
        peakRssMB,
        warmMaxRssMB,
      };
      if (req.phases && marks.extract !== undefined && marks.done !== undefined) {
        reply.phases = {
          until_extract_report_s: round((marks.extract - start) / 1000, 3),
          extract_report_to_done_s: round((marks.done - marks.extract) / 1000, 3),
          done_to_return_s: round((end - marks.done) / 1000, 3),
          peak_rss_at_extract_report_mb: round(mb(peakAfterDownload), 1),
        };
      }
      await send(reply);
    } catch (err) {
      await send({ kind: "error", message: err?.stack ?? String(err) });
    } finally {
      await service.close().catch(() => undefined);
      process.disconnect?.();
    }
  })();
});
