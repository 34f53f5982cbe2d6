/**
 * StreamingUntar (src/download/untar.ts), the fixed-memory extractor of downloads: archives written by
 * node-tar (pax long names, nested directories, empty and multi-megabyte files, many small files) come out
 * identical whatever the piece sizes they are fed in; GNU long names, pax sizes and base-256 sizes are read;
 * corrupt, truncated and unsafe archives are refused; permission bits are sanitised.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile, utimes } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { create as tarCreate } from "tar";
import { UnsafeArchiveError, ArchiveExtractionError } from "../../src/download/errors.js";
import { StreamingUntar } from "../../src/download/untar.js";
import { craftTar, tarHeader, type CraftedEntry } from "../helpers/crafted-tar.js";

let work: string;
before(async () => {
  work = await mkdtemp(path.join(tmpdir(), "tinker-untar-"));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

/** Feeds `archive` in pieces of the given sizes (cycled), copying each piece into a reused buffer as a socket would. */
async function extract(archive: Buffer, pieceSizes: number[] = [65_536]): Promise<string> {
  const dir = await mkdtemp(path.join(work, "x-"));
  const untar = new StreamingUntar(dir, "tinker://run/weights/t");
  const reused = Buffer.alloc(Math.max(...pieceSizes));
  let offset = 0;
  let i = 0;
  try {
    while (offset < archive.length) {
      const n = Math.min(pieceSizes[i++ % pieceSizes.length] as number, archive.length - offset);
      archive.copy(reused, 0, offset, offset + n);
      await untar.write(reused.subarray(0, n));
      reused.fill(0xee); // the extractor must not keep views of a piece once write() settled
      offset += n;
    }
    await untar.finish();
  } catch (err) {
    await untar.abort();
    throw err;
  }
  assert.equal(untar.bytes, archive.length);
  return dir;
}

/** Every file under `dir` with its size and sha256, keyed by relative path. */
async function tree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (rel: string): Promise<void> => {
    for (const e of await readdir(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel === "" ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) {
        out[`${r}/`] = "dir";
        await walk(r);
      } else {
        const data = await readFile(path.join(dir, r));
        out[r] = `${data.length}:${createHash("sha256").update(data).digest("hex").slice(0, 16)}`;
      }
    }
  };
  await walk("");
  return out;
}

describe("StreamingUntar", () => {
  let source: string;
  let archive: Buffer;

  before(async () => {
    source = path.join(work, "source");
    await mkdir(path.join(source, "nested", "deeper"), { recursive: true });
    await writeFile(path.join(source, "checkpoint_complete"), "");
    await writeFile(path.join(source, "adapter_model.safetensors"), randomBytes(3 * 1024 * 1024 + 77)); // spans several write buffers
    await writeFile(path.join(source, "nested", "deeper", `${"long-name-".repeat(15)}.bin`), randomBytes(1000)); // > 100 bytes: pax path
    await writeFile(path.join(source, "nested", "ünïcödé.json"), JSON.stringify({ ok: true }));
    for (let i = 0; i < 150; i++) await writeFile(path.join(source, "nested", `small-${i}.txt`), `file ${i}\n`.repeat(i));
    await utimes(path.join(source, "checkpoint_complete"), 1_700_000_000, 1_700_000_000);
    const file = path.join(work, "source.tar");
    await tarCreate({ file, cwd: source, portable: true }, ["."]);
    archive = await readFile(file);
  });

  test("extracts a node-tar archive identically, whatever the piece sizes", async () => {
    const expected = await tree(source);
    for (const sizes of [[65_536], [511, 513, 7], [1_048_576 * 2], [100_003, 3]]) {
      const dir = await extract(archive, sizes);
      assert.deepEqual(await tree(dir), expected, `pieces ${sizes.join(",")}`);
    }
    // Byte by byte, on a smaller archive (headers, data and padding split everywhere).
    const small = craftTar([
      { name: "a.txt", body: "alpha".repeat(300) },
      { name: "d", type: "dir" },
      { name: "d/b.bin", body: randomBytes(2000) },
      { name: "empty", body: "" },
    ]);
    assert.deepEqual(await tree(await extract(small, [1])), await tree(await extract(small)));
    const dir = await extract(archive);
    assert.equal((await stat(path.join(dir, "checkpoint_complete"))).mtimeMs, 1_700_000_000_000, "mtimes are kept");
  });

  test("reads GNU long names, pax sizes and base-256 sizes", async () => {
    const longName = `${"d".repeat(120)}/file.txt`;
    const body = Buffer.from("long-named");
    const gnuData = Buffer.from(`${longName}\0`);
    const gnuHeader = tarHeader({ name: "././@LongLink", body: gnuData }, gnuData.length);
    gnuHeader[156] = "L".charCodeAt(0);
    fixChecksum(gnuHeader);
    const parts: Buffer[] = [gnuHeader, pad(gnuData), tarHeader({ name: "short" }, body.length), pad(body)];

    // A pax header whose size overrides the ustar size field (set to 0 here).
    const paxBody = Buffer.from("pax sized");
    const pax = paxRecords({ path: "pax/renamed.txt", size: String(paxBody.length) });
    const paxHeader = tarHeader({ name: "PaxHeader/x", body: pax }, pax.length);
    paxHeader[156] = "x".charCodeAt(0);
    fixChecksum(paxHeader);
    parts.push(paxHeader, pad(pax), tarHeader({ name: "ignored-name" }, 0), pad(paxBody));

    // A size in base-256 (binary) notation.
    const b256Body = Buffer.from("binary size");
    const b256 = tarHeader({ name: "b256.txt" }, 0);
    b256.fill(0, 124, 136);
    b256[124] = 0x80;
    b256.writeUInt32BE(b256Body.length, 132);
    fixChecksum(b256);
    parts.push(b256, pad(b256Body), Buffer.alloc(1024));

    const dir = await extract(Buffer.concat(parts), [300]);
    assert.equal(await readFile(path.join(dir, longName), "utf8"), "long-named");
    assert.equal(await readFile(path.join(dir, "pax", "renamed.txt"), "utf8"), "pax sized");
    assert.equal(await readFile(path.join(dir, "b256.txt"), "utf8"), "binary size");
    assert.ok(!(await readdir(dir)).includes("short") && !(await readdir(dir)).includes("ignored-name"));
  });

  test("drops setuid, setgid and sticky bits and keeps the owner able to read and write", async () => {
    const dir = await extract(
      craftTar([
        { name: "suid", body: "x", mode: 0o4755 },
        { name: "readonly", body: "y", mode: 0o400 },
        { name: "sticky", type: "dir", mode: 0o1777 },
      ]),
    );
    assert.equal((await stat(path.join(dir, "suid"))).mode & 0o7777, 0o755 & ~process.umask());
    assert.equal((await stat(path.join(dir, "readonly"))).mode & 0o7777, 0o600 & ~process.umask());
    assert.equal((await stat(path.join(dir, "sticky"))).mode & 0o7000, 0);
  });

  test("a bad checksum, a truncated archive and a file below a file are ArchiveExtractionErrors", async () => {
    const corrupt = Buffer.from(archive);
    corrupt[0] = (corrupt[0] as number) ^ 0xff;
    await assert.rejects(extract(corrupt), (err) => err instanceof ArchiveExtractionError && /checksum/.test(err.message));
    await assert.rejects(
      extract(archive.subarray(0, 5000)),
      (err) => err instanceof ArchiveExtractionError && /truncated/.test(err.message),
    );
    await assert.rejects(
      extract(
        craftTar([
          { name: "a", body: "file" },
          { name: "a/b", body: "below a file" },
        ]),
      ),
      (err) => err instanceof ArchiveExtractionError && /ENOTDIR|EEXIST|not a directory/i.test(err.message),
    );
  });

  test("an archive without end blocks is accepted at an entry boundary; data after the end blocks is ignored", async () => {
    const whole = craftTar([{ name: "f", body: "data" }]);
    const dir1 = await extract(whole.subarray(0, whole.length - 1024));
    assert.equal(await readFile(path.join(dir1, "f"), "utf8"), "data");
    const dir2 = await extract(Buffer.concat([whole, Buffer.from("trailing garbage".repeat(100))]));
    assert.deepEqual(await readdir(dir2), ["f"]);
  });

  test("randomly corrupted archives either extract inside the root or fail with a typed error, never anything else", async () => {
    const base = craftTar([
      { name: "checkpoint_complete", body: "" },
      { name: "d", type: "dir" },
      { name: "d/weights.bin", body: Buffer.alloc(3000, 9) },
      { name: "config.json", body: '{"r":8}' },
    ]);
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const outcomes = { ok: 0, corrupt: 0, unsafe: 0 };
    for (let i = 0; i < 150; i++) {
      const mutated = Buffer.from(base);
      for (let k = 0, n = 1 + rand(8); k < n; k++) mutated[rand(mutated.length)] = rand(256);
      const cut = rand(4) === 0 ? mutated.subarray(0, rand(mutated.length)) : mutated;
      try {
        const dir = await extract(cut, [1 + rand(700)]);
        outcomes.ok++;
        for (const rel of Object.keys(await tree(dir))) assert.ok(!rel.startsWith(".."), rel);
      } catch (err) {
        if (err instanceof ArchiveExtractionError) outcomes.corrupt++;
        else if (err instanceof UnsafeArchiveError) outcomes.unsafe++;
        else throw err;
      }
    }
    for (const name of await readdir(work)) assert.match(name, /^(x-|source)/, "nothing written next to the extraction roots");
    assert.ok(outcomes.corrupt > 0 && outcomes.ok > 0, JSON.stringify(outcomes));
  });

  const unsafe: Array<[string, CraftedEntry[] | Buffer, string]> = [
    ["a pax path with ..", paxEntry("../escape.txt"), "../escape.txt"],
    ["a Windows drive path", [{ name: "C:/x", body: "x" }], "C:/x"],
    ["a backslash .. path", [{ name: "a\\..\\..\\x", body: "x" }], "a\\..\\..\\x"],
    // Only the extractor's own segment check catches this one: normalised, it would stay inside the root.
    ["a forward-slash .. path that would stay inside the root", [{ name: "weights/../x", body: "x" }], "weights/../x"],
    ["a forward-slash .. path that escapes", [{ name: "weights/../../x", body: "x" }], "weights/../../x"],
    ["a GNU sparse file", typed("sparse", "S"), "sparse"],
  ];
  for (const [title, entries, entry] of unsafe) {
    test(`refuses ${title} with UnsafeArchiveError`, async () => {
      const input = Buffer.isBuffer(entries) ? entries : craftTar(entries);
      await assert.rejects(extract(input), (err) => {
        assert.ok(err instanceof UnsafeArchiveError, String(err));
        assert.equal(err.entry, entry);
        return true;
      });
    });
  }
});

function pad(data: Buffer): Buffer {
  const rest = (512 - (data.length % 512)) % 512;
  return Buffer.concat([data, Buffer.alloc(rest)]);
}

function fixChecksum(h: Buffer): void {
  h.fill(" ", 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
}

function paxRecords(records: Record<string, string>): Buffer {
  let out = "";
  for (const [k, v] of Object.entries(records)) {
    const body = ` ${k}=${v}\n`;
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    out += `${len}${body}`;
  }
  return Buffer.from(out);
}

function paxEntry(pathValue: string): Buffer {
  const pax = paxRecords({ path: pathValue });
  const h = tarHeader({ name: "PaxHeader/x", body: pax }, pax.length);
  h[156] = "x".charCodeAt(0);
  fixChecksum(h);
  return Buffer.concat([h, pad(pax), tarHeader({ name: "innocent.txt" }, 1), pad(Buffer.from("x")), Buffer.alloc(1024)]);
}

function typed(name: string, flag: string): Buffer {
  const h = tarHeader({ name }, 0);
  h[156] = flag.charCodeAt(0);
  fixChecksum(h);
  return Buffer.concat([h, Buffer.alloc(1024)]);
}
