/**
 * leanGet (src/internal/net/lean-http.ts), the download client that reads sockets into one fixed buffer: body framing
 * (Content-Length, chunked, until close), backpressure from slow consumers, redirects, headers sent, early
 * closes, malformed answers, aborts, and TLS. Against raw TCP and HTTPS servers on loopback.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer as createHttpsServer } from "node:https";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { TinkerError } from "../../src/core/errors.js";
import { leanGet } from "../../src/internal/net/lean-http.js";

/** A TCP server that reads each request head, records it and hands the socket to `answer`. */
async function rawServer(
  answer: (socket: Socket, head: string) => void,
): Promise<{ url: string; heads: string[]; close: () => Promise<void> }> {
  const heads: string[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    let buffered = "";
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString("latin1");
      const end = buffered.indexOf("\r\n\r\n");
      if (end < 0) return;
      socket.off("data", onData);
      const head = buffered.slice(0, end);
      heads.push(head);
      answer(socket, head);
    };
    socket.on("data", onData);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    heads,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

/** Reads a whole body through `consume`, copying the views (they are reused), optionally slowly. */
async function readAll(
  url: string,
  options: { slowEvery?: number; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: Buffer; chunks: number; headers: Readonly<Record<string, string>> }> {
  const res = await leanGet(url, options.headers === undefined ? {} : { headers: options.headers });
  const parts: Buffer[] = [];
  let chunks = 0;
  await res.consume(async (chunk) => {
    parts.push(Buffer.from(chunk));
    chunks++;
    if (options.slowEvery !== undefined && chunks % options.slowEvery === 0) await new Promise((resolve) => setTimeout(resolve, 1));
  });
  return { status: res.status, body: Buffer.concat(parts), chunks, headers: res.headers };
}

const servers: Array<{ close: () => Promise<void> }> = [];
after(async () => {
  for (const s of servers) await s.close();
});

describe("leanGet", () => {
  const payload = randomBytes(3 * 1024 * 1024 + 123);

  test("a Content-Length body arrives whole and in order, also with a slow consumer that pauses the socket", async () => {
    const server = await rawServer((socket) => {
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${payload.length}\r\nX-Thing: a\r\nx-thing: b\r\n\r\n`);
      socket.end(payload);
    });
    servers.push(server);
    const fast = await readAll(`${server.url}/a`);
    assert.equal(fast.status, 200);
    assert.equal(sha(fast.body), sha(payload));
    assert.equal(fast.headers["x-thing"], "a, b", "repeated headers are joined, names lower-cased");
    const slow = await readAll(`${server.url}/b`, { slowEvery: 3 });
    assert.equal(sha(slow.body), sha(payload));
    assert.ok(slow.chunks > 10);
  });

  test("a chunked body (with extensions and trailers) and a read-until-close body", async () => {
    const server = await rawServer((socket, head) => {
      if (head.startsWith("GET /chunked")) {
        socket.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        let offset = 0;
        const sizes = [1, 15, 4096, 65_537, 1_000_000];
        let i = 0;
        while (offset < payload.length) {
          const n = Math.min(sizes[i++ % sizes.length] as number, payload.length - offset);
          socket.write(`${n.toString(16)}${i % 2 === 0 ? ";ext=1" : ""}\r\n`);
          socket.write(payload.subarray(offset, offset + n));
          socket.write("\r\n");
          offset += n;
        }
        socket.end("0\r\nX-Trailer: yes\r\n\r\n");
      } else {
        socket.write("HTTP/1.1 200 OK\r\n\r\n");
        socket.end(payload);
      }
    });
    servers.push(server);
    const chunked = await readAll(`${server.url}/chunked`, { slowEvery: 5 });
    assert.equal(sha(chunked.body), sha(payload));
    const untilClose = await readAll(`${server.url}/close`);
    assert.equal(sha(untilClose.body), sha(payload));
  });

  test("sends only the caller's headers plus Host, Connection and User-Agent", async () => {
    const server = await rawServer((socket) => socket.end("HTTP/1.1 204 No Content\r\n\r\n"));
    servers.push(server);
    const res = await readAll(`${server.url}/p?q=1`, { headers: { range: "bytes=5-" } });
    assert.equal(res.status, 204);
    const lines = (server.heads[0] as string).split("\r\n");
    assert.equal(lines[0], "GET /p?q=1 HTTP/1.1");
    const names = lines
      .slice(1)
      .map((l) => l.slice(0, l.indexOf(":")).toLowerCase())
      .sort();
    assert.deepEqual(names, ["connection", "host", "range", "user-agent"]);
  });

  test("follows redirects to another host, and gives up after maxRedirects", async () => {
    const target = await rawServer((socket) => socket.end("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    servers.push(target);
    const hop = await rawServer((socket, head) => {
      const location = head.startsWith("GET /loop") ? "/loop" : `${target.url}/final`;
      socket.end(`HTTP/1.1 302 Found\r\nLocation: ${location}\r\nContent-Length: 5\r\n\r\nmoved`);
    });
    servers.push(hop);
    const res = await readAll(`${hop.url}/start`, { headers: { range: "bytes=0-" } });
    assert.equal(res.body.toString(), "ok");
    assert.match(target.heads[0] as string, /^GET \/final HTTP\/1\.1/);
    await assert.rejects(leanGet(`${hop.url}/loop`, { maxRedirects: 3 }), (err) => {
      assert.ok(err instanceof TinkerError);
      assert.match(err.message, /redirected more than 3 times/);
      return true;
    });
    assert.equal(hop.heads.filter((h) => h.startsWith("GET /loop")).length, 4);
  });

  test("an interim 100 Continue is skipped", async () => {
    const server = await rawServer((socket) => socket.end("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"));
    servers.push(server);
    const res = await readAll(server.url);
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), "abc");
  });

  test("a connection cut inside the body rejects with a retryable ECONNRESET, not a TinkerError", async () => {
    const server = await rawServer((socket) => {
      socket.write("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
      socket.write(Buffer.alloc(400, 1), () => socket.destroy());
    });
    servers.push(server);
    let received = 0;
    const res = await leanGet(server.url);
    await assert.rejects(
      res.consume((c) => {
        received += c.length;
      }),
      (err: Error & { code?: string }) => {
        assert.ok(!(err instanceof TinkerError));
        assert.equal(err.code, "ECONNRESET");
        return true;
      },
    );
    assert.equal(received, 400);
  });

  test("malformed answers reject with EPROTO", async () => {
    const server = await rawServer((socket, head) => {
      if (head.startsWith("GET /status")) socket.end("HTCPCP/1.0 418 teapot\r\n\r\n");
      else if (head.startsWith("GET /length")) socket.end("HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nabcde");
      else socket.end("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    });
    servers.push(server);
    for (const p of ["/status", "/length"]) {
      await assert.rejects(leanGet(`${server.url}${p}`), (err: Error & { code?: string }) => err.code === "EPROTO");
    }
    const res = await leanGet(`${server.url}/chunk`);
    await assert.rejects(
      res.consume(() => undefined),
      (err: Error & { code?: string }) => err.code === "EPROTO",
    );
  });

  test("an abort during the body rejects with the signal's reason and closes the socket", async () => {
    let closed: Promise<void> | undefined;
    const server = await rawServer((socket) => {
      closed = new Promise((resolve) => socket.on("close", () => resolve()));
      socket.write("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
      socket.write(Buffer.alloc(1000));
    });
    servers.push(server);
    const controller = new AbortController();
    const res = await leanGet(server.url, { signal: controller.signal });
    const reason = new Error("stop now");
    await assert.rejects(
      res.consume(() => controller.abort(reason)),
      (err) => err === reason,
    );
    await closed;
  });

  test("an error thrown by the consumer wins, also when the connection fails while it is pending", async () => {
    const server = await rawServer((socket) => {
      socket.write("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
      socket.write(Buffer.alloc(1000), () => setTimeout(() => socket.destroy(), 20));
    });
    servers.push(server);
    const mine = new Error("unsafe entry");
    const res = await leanGet(server.url);
    await assert.rejects(
      res.consume(() => new Promise<void>((_, reject) => setTimeout(() => reject(mine), 100))),
      (err) => err === mine,
    );
  });

  test("unsupported schemes and header injection are refused before connecting", async () => {
    await assert.rejects(leanGet("ftp://example.com/x"), TinkerError);
    const server = await rawServer((socket) => socket.end("HTTP/1.1 204 No Content\r\n\r\n"));
    servers.push(server);
    await assert.rejects(leanGet(server.url, { headers: { range: "bytes=0-\r\nX-Evil: 1" } }), TinkerError);
  });

  test("HTTPS: reads through TLS into the fixed buffer, pausing and resuming (child process trusting a test CA)", async () => {
    const fixtures = new URL("../fixtures/tls/", import.meta.url);
    const server = createHttpsServer(
      { key: readFileSync(new URL("key.pem", fixtures)), cert: readFileSync(new URL("cert.pem", fixtures)) },
      (_req, res) => {
        res.writeHead(200, { "content-length": payload.length });
        res.end(payload);
      },
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    servers.push({ close: () => new Promise<void>((resolve) => server.close(() => resolve())) });
    const { port } = server.address() as AddressInfo;
    const child = fileURLToPath(new URL("../helpers/lean-get-child.ts", import.meta.url));
    const run = async (url: string, trust: boolean): Promise<{ status?: number; bytes?: number; sha256?: string; error?: string }> => {
      const env = { ...process.env };
      if (trust) env["NODE_EXTRA_CA_CERTS"] = fileURLToPath(new URL("cert.pem", fixtures));
      else delete env["NODE_EXTRA_CA_CERTS"];
      const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", child, url], { env });
      return JSON.parse(stdout) as { status?: number; bytes?: number; sha256?: string; error?: string };
    };
    const ok = await run(`https://localhost:${port}/x`, true);
    assert.deepEqual(ok, { status: 200, bytes: payload.length, sha256: sha(payload) });
    const untrusted = await run(`https://localhost:${port}/x`, false);
    assert.match(String(untrusted.error), /self.signed|certificate/i, "certificates are verified");
  });
});
