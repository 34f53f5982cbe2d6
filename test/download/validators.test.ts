/**
 * Issue 12 item 1 (client side): a resumed download must never install a mix of two versions of an archive.
 * The resume sends `If-Range` with the first response's validator (ETag, else Last-Modified), every response's
 * validator is checked, and a changed archive starts over (once) or fails clearly.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, beforeEach, describe, test } from "node:test";
import { ArchiveChangedError, RestClient, downloadCheckpoint } from "../../src/index.js";
import { Transport } from "../../src/internal/transport.js";
import { startArchiveHost, type ArchiveHost } from "../helpers/archive-host.js";
import { craftTar } from "../helpers/crafted-tar.js";

const CKPT = "tinker://sess-1:train:0/weights/ckpt-v";

/** A valid checkpoint archive whose weights file is filled with `fill` (so versions differ in content). */
function version(fill: number): Buffer {
  return craftTar([
    { name: "adapter_config.json", body: JSON.stringify({ r: 8 }) },
    { name: "weights", type: "dir" },
    { name: "weights/adapter_model.safetensors", body: Buffer.alloc(300_000, fill) },
    { name: "checkpoint_complete", body: "" },
  ]);
}

describe("resumed downloads and changing archives", () => {
  let host: ArchiveHost;
  let rest: RestClient;
  let work: string;
  let n = 0;

  before(async () => {
    host = await startArchiveHost();
    rest = new RestClient(new Transport({ baseUrl: host.apiUrl, apiKey: "tml-validators-key-123", maxRetries: 0 }));
    work = await mkdtemp(path.join(tmpdir(), "tinker-dl-validators-"));
  });
  after(async () => {
    await host.close();
    await rm(work, { recursive: true, force: true });
  });
  beforeEach(() => {
    host.downloadRequests.length = 0;
    host.plan.cuts = [];
    host.plan.replaceAfterCut = [];
    host.plan.validators = "both";
    host.plan.ignoreIfRange = false;
  });

  async function weightsOf(destination: string): Promise<Buffer> {
    return readFile(path.join(destination, "weights/adapter_model.safetensors"));
  }

  test("an unchanged archive resumes with If-Range set to the first response's ETag", async () => {
    host.setArchive(CKPT, version(1));
    host.plan.cuts = [100_000];
    const result = await downloadCheckpoint(rest, CKPT, { outputDir: path.join(work, `d${++n}`), retryDelayMs: 1 });
    const [first, second] = host.downloadRequests;
    assert.equal(first?.headers["if-range"], undefined);
    assert.match(String(second?.headers.range), /^bytes=\d+-$/);
    assert.match(String(second?.headers["if-range"]), /^"[0-9a-f]+"$/, "the strong ETag of the first response");
    assert.equal(host.downloadRequests.length, 2);
    assert.ok((await weightsOf(result.destination)).every((b) => b === 1));
  });

  test("an archive overwritten between the cut and the resume is downloaded again whole, never mixed", async () => {
    host.setArchive(CKPT, version(1));
    host.plan.cuts = [100_000];
    host.plan.replaceAfterCut = [version(2)];
    const result = await downloadCheckpoint(rest, CKPT, { outputDir: path.join(work, `d${++n}`), retryDelayMs: 1 });
    const weights = await weightsOf(result.destination);
    assert.equal(weights.length, 300_000);
    assert.ok(
      weights.every((b) => b === 2),
      "only the new version's bytes",
    );
  });

  test("a host that ignores If-Range is caught by the changed ETag of its 206", async () => {
    host.setArchive(CKPT, version(3));
    host.plan.cuts = [100_000];
    host.plan.replaceAfterCut = [version(4)];
    host.plan.ignoreIfRange = true;
    const result = await downloadCheckpoint(rest, CKPT, { outputDir: path.join(work, `d${++n}`), retryDelayMs: 1 });
    assert.ok((await weightsOf(result.destination)).every((b) => b === 4));
  });

  test("without an ETag, Last-Modified is the validator", async () => {
    host.setArchive(CKPT, version(5));
    host.plan.validators = "last-modified";
    host.plan.cuts = [100_000];
    host.plan.replaceAfterCut = [version(6)];
    host.plan.ignoreIfRange = true;
    const result = await downloadCheckpoint(rest, CKPT, { outputDir: path.join(work, `d${++n}`), retryDelayMs: 1 });
    assert.match(String(host.downloadRequests[1]?.headers["if-range"]), /GMT$/);
    assert.ok((await weightsOf(result.destination)).every((b) => b === 6));
  });

  test("an archive that keeps changing fails with ArchiveChangedError after one restart, installing nothing", async () => {
    host.setArchive(CKPT, version(7));
    // Cuts are taken per served response: the refused resume (a 200 of version 8, dropped at once) takes one too.
    host.plan.cuts = [100_000, 100_000, 100_000];
    host.plan.replaceAfterCut = [version(8), version(9)];
    const out = path.join(work, `d${++n}`);
    await assert.rejects(downloadCheckpoint(rest, CKPT, { outputDir: out, retryDelayMs: 1 }), (err: unknown) => {
      assert.ok(err instanceof ArchiveChangedError, String(err));
      assert.match(err.message, /changed while it was being downloaded/);
      assert.match(err.message, new RegExp(CKPT.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
      return true;
    });
    await assert.rejects(readFile(path.join(out, "sess-1_train_0_weights_ckpt-v", "checkpoint_complete")));
  });
});
