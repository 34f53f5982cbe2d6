/**
 * downloadCheckpoint: streaming, resume, URL refresh, credentials, safe extraction and atomic install,
 * against real HTTP servers (a crafted API + download host, and the bundled local server).
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { APIConnectionError, APIUserAbortError, NotFoundError } from "../../src/core/errors.js";
import {
  DestinationExistsError,
  UnsafeArchiveError,
  ArchiveExtractionError,
  IncompleteCheckpointError,
} from "../../src/download/errors.js";
import { InvalidTinkerPathError } from "../../src/core/tinker-path.js";
import { Transport } from "../../src/internal/transport.js";
import { checkpointDirName, downloadCheckpoint, type DownloadProgress } from "../../src/download/download.js";
import { RestClient } from "../../src/rest-client.js";
import { startLocalServer } from "../../src/server/index.js";
import { startArchiveHost, type ArchiveHost } from "../helpers/archive-host.js";
import { craftTar, validCheckpointTar, type CraftedEntry } from "../helpers/crafted-tar.js";
import { seedRun, seedSynthetic } from "../helpers/seed-checkpoints.js";

const API_KEY = "tml-download-test-secret-key";
const CKPT = "tinker://sess-1:train:0/weights/ckpt-1";
const DIR_NAME = "sess-1_train_0_weights_ckpt-1";

let host: ArchiveHost;
let rest: RestClient;
let work: string;

before(async () => {
  host = await startArchiveHost();
  rest = new RestClient(new Transport({ baseUrl: host.apiUrl, apiKey: API_KEY, maxRetries: 0 }));
  work = await mkdtemp(path.join(tmpdir(), "tinker-dl-"));
});

after(async () => {
  await host.close();
  await rm(work, { recursive: true, force: true });
});

function reset(): void {
  host.apiRequests.length = 0;
  host.downloadRequests.length = 0;
  host.plan.cuts = [];
  host.plan.noContentLength = false;
  host.plan.ignoreRange = false;
  host.plan.downloadStatus = undefined;
  host.plan.archiveStatuses = [];
  host.plan.slowChunkBytes = undefined;
  host.plan.stallAfterBytes = undefined;
}

async function freshDir(name: string): Promise<string> {
  const dir = path.join(work, name);
  await mkdir(dir, { recursive: true });
  return dir;
}

/** A resume asks for `bytes=<n>-` with 0 < n ≤ what the server sent (bytes in flight at the cut may be lost). */
function assertResumedWithin(range: string | undefined, sent: number): void {
  const n = Number(/^bytes=(\d+)-$/.exec(range ?? "")?.[1]);
  assert.ok(n > 0 && n <= sent, `Range ${String(range)} for ${sent} bytes sent`);
}

async function assertNoTempDirs(outputDir: string): Promise<void> {
  const left = (await readdir(outputDir)).filter((n) => n.includes(".tmp-"));
  assert.deepEqual(left, [], `temporary directories left in ${outputDir}`);
}

describe("downloadCheckpoint (crafted hosts)", () => {
  test("names the destination <run-id>_<kind>_<name> with unsafe characters replaced", () => {
    assert.equal(checkpointDirName(CKPT), DIR_NAME);
    assert.equal(checkpointDirName("tinker://run-1/sampler_weights/s1"), "run-1_sampler_weights_s1");
  });

  test("downloads, extracts and installs, reporting download/extract progress and one final done", async () => {
    reset();
    const tar = validCheckpointTar(300_000);
    host.setArchive(CKPT, tar);
    const out = await freshDir("happy");
    const events: DownloadProgress[] = [];
    const result = await downloadCheckpoint(rest, CKPT, { outputDir: out, onProgress: (p) => events.push(p) });

    assert.equal(result.destination, path.join(out, DIR_NAME));
    assert.equal(result.checkpointPath, CKPT);
    assert.equal(result.bytes, tar.length);
    assert.ok(existsSync(path.join(result.destination, "checkpoint_complete")));
    assert.equal((await readFile(path.join(result.destination, "weights/adapter_model.safetensors"))).length, 4096 + 300_000);

    const phases = events.map((e) => e.phase);
    assert.ok(phases.includes("download") && phases.includes("extract"));
    assert.equal(phases.at(-1), "done");
    assert.equal(phases.filter((p) => p === "done").length, 1);
    assert.deepEqual(events.at(-1), { phase: "done", bytes: tar.length, totalBytes: tar.length });
    assert.ok(events.filter((e) => e.phase === "download").every((e) => e.totalBytes === tar.length));
    // phases never go backwards
    const order = { download: 0, extract: 1, done: 2 } as const;
    for (let i = 1; i < events.length; i++) assert.ok(order[events[i]!.phase] >= order[events[i - 1]!.phase]);
    await assertNoTempDirs(out);
  });

  test("never sends the API key (or any credential) to the download host", async () => {
    reset();
    host.setArchive(CKPT, validCheckpointTar());
    const out = await freshDir("nokey");
    await downloadCheckpoint(rest, CKPT, { outputDir: out });
    assert.equal(host.apiRequests.length, 1);
    assert.equal(host.apiRequests[0]?.headers["x-api-key"], API_KEY);
    assert.ok(host.downloadRequests.length >= 1);
    for (const r of host.downloadRequests) {
      assert.equal(r.headers["x-api-key"], undefined);
      assert.equal(r.headers["authorization"], undefined);
      assert.equal(r.headers["cookie"], undefined);
      assert.ok(!JSON.stringify(r.headers).includes(API_KEY));
    }
  });

  test("reports totalBytes null while the size is unknown (no Content-Length)", async () => {
    reset();
    const tar = validCheckpointTar(200_000);
    host.setArchive(CKPT, tar);
    host.plan.noContentLength = true;
    const out = await freshDir("nolength");
    const events: DownloadProgress[] = [];
    const result = await downloadCheckpoint(rest, CKPT, { outputDir: out, onProgress: (p) => events.push(p) });
    assert.equal(result.bytes, tar.length);
    const dl = events.filter((e) => e.phase === "download");
    assert.ok(dl.length > 0);
    assert.ok(dl.every((e) => e.totalBytes === null));
    assert.deepEqual(events.at(-1), { phase: "done", bytes: tar.length, totalBytes: tar.length });
  });

  test("resumes an interrupted transfer with a Range request", async () => {
    reset();
    const tar = validCheckpointTar(500_000);
    host.setArchive(CKPT, tar);
    host.plan.cuts = [100_000];
    const out = await freshDir("resume");
    const result = await downloadCheckpoint(rest, CKPT, { outputDir: out, retryDelayMs: 1 });
    assert.equal(result.bytes, tar.length);
    assert.equal(host.downloadRequests.length, 2);
    assert.equal(host.downloadRequests[0]?.headers.range, undefined);
    assertResumedWithin(host.downloadRequests[1]?.headers.range, 100_000);
    assert.equal(host.apiRequests.length, 1, "the signed URL was still valid: no refresh");
    assert.equal((await readFile(path.join(result.destination, "weights/adapter_model.safetensors"))).length, 4096 + 500_000);
  });

  test("restarts from byte 0 when the server ignores Range (answers 200)", async () => {
    reset();
    const tar = validCheckpointTar(300_000);
    host.setArchive(CKPT, tar);
    host.plan.cuts = [50_000];
    host.plan.ignoreRange = true;
    const out = await freshDir("norange");
    const result = await downloadCheckpoint(rest, CKPT, { outputDir: out, retryDelayMs: 1 });
    assert.equal(result.bytes, tar.length);
    assertResumedWithin(host.downloadRequests[1]?.headers.range, 50_000);
    assert.ok(existsSync(path.join(result.destination, "checkpoint_complete")));
  });

  test("gets a fresh signed URL when the old one expired (403), then resumes", async () => {
    reset();
    const tar = validCheckpointTar(300_000);
    host.setArchive(CKPT, tar);
    host.plan.cuts = [64_000];
    const out = await freshDir("refresh");
    const events: DownloadProgress[] = [];
    const result = await downloadCheckpoint(rest, CKPT, {
      outputDir: out,
      retryDelayMs: 1,
      onProgress: (p) => {
        events.push(p);
        // expire the first URL as soon as the transfer starts
        if (events.length === 1) host.expireIssuedUrls();
      },
    });
    assert.equal(result.bytes, tar.length);
    assert.equal(host.apiRequests.length, 2, "one refresh of the signed URL");
    const urls = host.downloadRequests.map((r) => r.url.split("?")[0]);
    assert.equal(urls[0], urls[1], "the retry used the old URL and got 403");
    assert.notEqual(urls[1], urls[2], "then a fresh URL");
    assertResumedWithin(host.downloadRequests[2]?.headers.range, 64_000);
  });

  test("an exception thrown by onProgress ends the download at once and is rethrown unchanged", async () => {
    // 1: the first report, before the body is read; 2: a report from inside the transfer (slow host).
    for (const throwAt of [1, 2]) {
      reset();
      const tar = validCheckpointTar(3_000_000);
      host.setArchive(CKPT, tar);
      host.plan.slowChunkBytes = 100_000;
      const out = await freshDir(`callback-${throwAt}`);
      const mine = new Error("my progress bar broke");
      const seen: DownloadProgress[] = [];
      await assert.rejects(
        downloadCheckpoint(rest, CKPT, {
          outputDir: out,
          retryDelayMs: 1,
          onProgress: (p) => {
            seen.push(p);
            if (seen.length === throwAt) throw mine;
          },
        }),
        (err) => err === mine,
      );
      const last = seen.at(-1);
      assert.equal(last?.phase, "download");
      if (throwAt === 2) assert.ok((last?.bytes ?? 0) > 0 && (last?.bytes ?? 0) < tar.length, JSON.stringify(last));
      assert.equal(host.downloadRequests.length, 1, "not retried");
      assert.deepEqual(await readdir(out), [], "nothing installed, no temp files");
    }
  });

  test("gives up with APIConnectionError after bounded attempts, leaving no temp files", async () => {
    reset();
    host.setArchive(CKPT, validCheckpointTar());
    host.plan.cuts = [0, 0, 0, 0, 0, 0];
    const out = await freshDir("giveup");
    await assert.rejects(downloadCheckpoint(rest, CKPT, { outputDir: out, retryDelayMs: 1, maxAttempts: 3 }), (err) => {
      assert.ok(err instanceof APIConnectionError, String(err));
      assert.match(err.message, /3 attempts/);
      return true;
    });
    assert.equal(host.downloadRequests.length, 3);
    assert.deepEqual(await readdir(out), []);
  });

  test("a stalled transfer times out (timeoutMs of inactivity) and is retried, boundedly", async () => {
    reset();
    host.setArchive(CKPT, validCheckpointTar());
    host.plan.stallAfterBytes = 0;
    const out = await freshDir("stall");
    await assert.rejects(downloadCheckpoint(rest, CKPT, { outputDir: out, timeoutMs: 150, maxAttempts: 2, retryDelayMs: 1 }), (err) => {
      assert.ok(err instanceof APIConnectionError, String(err));
      assert.match(err.message, /stalled/);
      return true;
    });
    assert.equal(host.downloadRequests.length, 2);
    assert.deepEqual(await readdir(out), []);
  });

  test("validates the path before sending anything", async () => {
    reset();
    const out = await freshDir("invalid");
    await assert.rejects(downloadCheckpoint(rest, "tinker://run-1/bogus/x", { outputDir: out }), InvalidTinkerPathError);
    await assert.rejects(downloadCheckpoint(rest, "run-1/weights/x", { outputDir: out }), InvalidTinkerPathError);
    assert.equal(host.apiRequests.length, 0);
    assert.deepEqual(await readdir(out), []);
  });

  test("a missing checkpoint is a NotFoundError naming the path", async () => {
    reset();
    const out = await freshDir("missing");
    const missing = "tinker://sess-1:train:0/weights/nope";
    await assert.rejects(downloadCheckpoint(rest, missing, { outputDir: out }), (err) => {
      assert.ok(err instanceof NotFoundError);
      assert.ok(err.message.includes(missing));
      assert.match(err.message, /expired or deleted\?/);
      return true;
    });
    assert.deepEqual(await readdir(out), []);
  });

  test("an existing destination without force fails before anything is downloaded; the old copy is kept", async () => {
    reset();
    host.setArchive(CKPT, validCheckpointTar());
    const out = await freshDir("exists");
    const dest = path.join(out, DIR_NAME);
    await mkdir(dest);
    await writeFile(path.join(dest, "old.txt"), "old");
    await assert.rejects(downloadCheckpoint(rest, CKPT, { outputDir: out }), (err) => {
      assert.ok(err instanceof DestinationExistsError);
      assert.equal(err.destination, dest);
      return true;
    });
    assert.equal(host.apiRequests.length, 0);
    assert.equal(host.downloadRequests.length, 0);
    assert.equal(await readFile(path.join(dest, "old.txt"), "utf8"), "old");
  });

  test("force replaces the old copy only after the new one is complete", async () => {
    reset();
    host.setArchive(CKPT, validCheckpointTar(200_000));
    const out = await freshDir("force");
    const dest = path.join(out, DIR_NAME);
    await mkdir(dest);
    await writeFile(path.join(dest, "old.txt"), "old");
    const oldSeen: boolean[] = [];
    await downloadCheckpoint(rest, CKPT, {
      outputDir: out,
      force: true,
      onProgress: (p) => {
        if (p.phase !== "done") oldSeen.push(existsSync(path.join(dest, "old.txt")));
      },
    });
    assert.ok(oldSeen.length > 0 && oldSeen.every(Boolean), "the old copy stays in place while downloading and extracting");
    assert.ok(!existsSync(path.join(dest, "old.txt")));
    assert.ok(existsSync(path.join(dest, "checkpoint_complete")));
    await assertNoTempDirs(out);
  });

  test("a failed forced download leaves the old copy intact and no temp dirs", async () => {
    reset();
    host.setArchive(CKPT, validCheckpointTar());
    host.plan.downloadStatus = 500;
    const out = await freshDir("force-fail");
    const dest = path.join(out, DIR_NAME);
    await mkdir(dest);
    await writeFile(path.join(dest, "old.txt"), "old");
    await assert.rejects(downloadCheckpoint(rest, CKPT, { outputDir: out, force: true, retryDelayMs: 1, maxAttempts: 2 }));
    assert.equal(await readFile(path.join(dest, "old.txt"), "utf8"), "old");
    assert.deepEqual(await readdir(out), [DIR_NAME]);

    host.plan.downloadStatus = undefined;
    host.setArchive(CKPT, craftTar([{ name: "a.txt", body: "no marker" }]));
    await assert.rejects(downloadCheckpoint(rest, CKPT, { outputDir: out, force: true }), IncompleteCheckpointError);
    assert.equal(await readFile(path.join(dest, "old.txt"), "utf8"), "old");
    assert.deepEqual(await readdir(out), [DIR_NAME]);
  });

  test("an abort stops the download and removes temporary files", async () => {
    reset();
    host.setArchive(CKPT, validCheckpointTar(400_000));
    host.plan.slowChunkBytes = 16_384;
    const out = await freshDir("abort");
    const ac = new AbortController();
    await assert.rejects(
      downloadCheckpoint(rest, CKPT, {
        outputDir: out,
        signal: ac.signal,
        onProgress: (p) => {
          if (p.phase === "download" && p.bytes > 50_000) ac.abort();
        },
      }),
      APIUserAbortError,
    );
    assert.deepEqual(await readdir(out), []);
  });

  test("a checkpoint without the checkpoint_complete marker is rejected", async () => {
    reset();
    host.setArchive(CKPT, craftTar([{ name: "adapter_config.json", body: "{}" }]));
    const out = await freshDir("nomarker");
    await assert.rejects(downloadCheckpoint(rest, CKPT, { outputDir: out }), (err) => {
      assert.ok(err instanceof IncompleteCheckpointError);
      assert.match(err.message, /checkpoint_complete/);
      return true;
    });
    assert.deepEqual(await readdir(out), []);
  });

  test("a truncated or non-tar archive is an ArchiveExtractionError and installs nothing", async () => {
    reset();
    const out = await freshDir("corrupt");
    const whole = validCheckpointTar(10_000);
    for (const bad of [whole.subarray(0, 2048), Buffer.from("this is not a tar archive at all".repeat(40))]) {
      host.setArchive(CKPT, bad);
      await assert.rejects(downloadCheckpoint(rest, CKPT, { outputDir: out }), (err) => {
        assert.ok(err instanceof ArchiveExtractionError, String(err));
        assert.ok(err.message.includes(CKPT));
        return true;
      });
      assert.deepEqual(await readdir(out), []);
    }
  });

  test("creates a missing output directory", async () => {
    reset();
    host.setArchive(CKPT, validCheckpointTar());
    const out = path.join(work, "deep", "er", "models");
    const r = await downloadCheckpoint(rest, CKPT, { outputDir: out });
    assert.equal(r.destination, path.join(out, DIR_NAME));
  });

  const marker: CraftedEntry = { name: "checkpoint_complete", body: "" };
  const unsafeCases: { title: string; entries: (outside: string) => CraftedEntry[]; entry: (outside: string) => string }[] = [
    {
      title: "an absolute path",
      entries: (outside) => [marker, { name: path.join(outside, "abs.txt"), body: "pwned" }],
      entry: (outside) => path.join(outside, "abs.txt"),
    },
    { title: "a ../ path", entries: () => [marker, { name: "../x", body: "pwned" }], entry: () => "../x" },
    { title: "a nested a/../../x path", entries: () => [marker, { name: "a/../../x", body: "pwned" }], entry: () => "a/../../x" },
    {
      title: "a symlink escaping the destination",
      entries: (outside) => [marker, { name: "link", type: "symlink", linkname: outside }, { name: "link/pwned.txt", body: "pwned" }],
      entry: () => "link",
    },
    {
      title: "a symlink with a relative escaping target",
      entries: () => [marker, { name: "up", type: "symlink", linkname: "../../../../.." }],
      entry: () => "up",
    },
    {
      title: "a hardlink escaping the destination",
      entries: (outside) => [marker, { name: "hard", type: "hardlink", linkname: path.join(outside, "sentinel.txt") }],
      entry: () => "hard",
    },
    {
      title: "a relative hardlink escaping the destination",
      entries: () => [marker, { name: "hard2", type: "hardlink", linkname: "../../sentinel.txt" }],
      entry: () => "hard2",
    },
    { title: "a character device", entries: () => [marker, { name: "null", type: "char" }], entry: () => "null" },
    { title: "a block device", entries: () => [marker, { name: "disk", type: "block" }], entry: () => "disk" },
    { title: "a FIFO", entries: () => [marker, { name: "pipe", type: "fifo" }], entry: () => "pipe" },
  ];

  for (const c of unsafeCases) {
    test(`rejects ${c.title} with UnsafeArchiveError and writes nothing outside`, async () => {
      reset();
      const root = await mkdtemp(path.join(work, "unsafe-"));
      const outside = path.join(root, "outside");
      await mkdir(outside);
      await writeFile(path.join(outside, "sentinel.txt"), "sentinel");
      const out = path.join(root, "out");
      await mkdir(out);
      host.setArchive(CKPT, craftTar(c.entries(outside)));
      await assert.rejects(downloadCheckpoint(rest, CKPT, { outputDir: out }), (err) => {
        assert.ok(err instanceof UnsafeArchiveError, `${String(err)}`);
        assert.equal(err.entry, c.entry(outside));
        assert.ok(err.message.includes(JSON.stringify(c.entry(outside))));
        return true;
      });
      assert.deepEqual(await readdir(out), [], "nothing installed, no temp dirs");
      assert.deepEqual((await readdir(root)).sort(), ["out", "outside"]);
      assert.deepEqual(await readdir(outside), ["sentinel.txt"]);
      assert.equal(await readFile(path.join(outside, "sentinel.txt"), "utf8"), "sentinel");
      assert.ok(!existsSync(path.join(work, "x")));
    });
  }
});

describe("downloadCheckpoint (local server)", () => {
  test("downloads a saved checkpoint with its files and progress, and resumes after a cut", async () => {
    const server = await startLocalServer();
    try {
      const client = new RestClient(new Transport({ baseUrl: server.baseUrl, apiKey: server.apiKey }));
      const seeded = await seedRun(server.baseUrl, server.apiKey, { saves: [{ name: "final" }] });
      const out = await freshDir("local");
      const events: DownloadProgress[] = [];
      const result = await downloadCheckpoint(client, seeded.paths[0]!, { outputDir: out, onProgress: (p) => events.push(p) });
      assert.equal(result.destination, path.join(out, checkpointDirName(seeded.paths[0]!)));
      assert.deepEqual((await readdir(result.destination)).sort(), [
        "adapter_config.json",
        "adapter_model.safetensors",
        "checkpoint_complete",
        "optimizer.safetensors",
      ]);
      assert.equal(events.at(-1)?.phase, "done");
      const archiveGets = server.requests.filter((r) => r.path.startsWith("/local/archives/"));
      assert.equal(archiveGets.length, 1);
      assert.equal(archiveGets[0]?.headers["x-api-key"], undefined, "no API key on the signed URL");

      // A 2 MB synthetic checkpoint, cut once after 300 000 bytes by the server's fault injection.
      const big = await seedSynthetic(server.baseUrl, server.apiKey, { name: "big", sizeBytes: 2_000_000 });
      server.setFaults([{ path: "/local/archives/", times: 1, cutAfterBytes: 300_000 }]);
      const r2 = await downloadCheckpoint(client, big, { outputDir: out, retryDelayMs: 1 });
      const gets = server.requests.filter((r) => r.path.startsWith("/local/archives/") && r.path.includes("/big"));
      assert.equal(gets.length, 2);
      // The client resumes from what it received (bytes in flight when the socket was destroyed may be lost).
      const resumedAt = Number(/^bytes=(\d+)-$/.exec(String(gets[1]?.headers["range"]))?.[1]);
      assert.ok(resumedAt > 0 && resumedAt <= 300_000, String(gets[1]?.headers["range"]));
      assert.equal(gets[1]?.status, 206);
      assert.ok(r2.bytes > 2_000_000);
      const weights = await readFile(path.join(r2.destination, "adapter_model.safetensors"));
      assert.equal(weights.length, 2_000_000);
      await assertNoTempDirs(out);
    } finally {
      await server.close();
    }
  });
});
