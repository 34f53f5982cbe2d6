/**
 * nodeHttpFetch (src/internal/net/node-fetch.ts), the default fetch of every REST attempt: what the retry layer relies
 * on (3xx returned as is, aborts rejecting with the signal's reason, network failures as TypeError with a
 * cause), decoded bodies, keep-alive reuse. Against node:http servers on loopback.
 */
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { after, describe, test } from "node:test";
import zlib from "node:zlib";
import { nodeHttpFetch } from "../../src/internal/net/node-fetch.js";

async function serve(
  handler: (req: IncomingMessage, res: ServerResponse, body: string) => void,
): Promise<{ url: string; server: Server; connections: () => number }> {
  let connections = 0;
  const server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8").on("data", (c: string) => (body += c));
    req.on("end", () => handler(req, res, body));
  });
  server.on("connection", (_s: Socket) => connections++);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  servers.push(server);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, connections: () => connections };
}

const servers: Server[] = [];
after(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
});

describe("nodeHttpFetch", () => {
  test("sends method, headers and body; decodes gzip, deflate (both forms) and br bodies", async () => {
    const json = JSON.stringify({ hello: "world", n: [1, 2, 3] });
    const { url } = await serve((req, res, body) => {
      const enc = req.url?.slice(1) ?? "";
      const data =
        enc === "gzip"
          ? zlib.gzipSync(json)
          : enc === "deflate"
            ? zlib.deflateSync(json)
            : enc === "rawdeflate"
              ? zlib.deflateRawSync(json)
              : enc === "br"
                ? zlib.brotliCompressSync(json)
                : Buffer.from(
                    JSON.stringify({ method: req.method, body, key: req.headers["x-api-key"], ae: req.headers["accept-encoding"] }),
                  );
      res.writeHead(200, {
        "content-type": "application/json",
        ...(enc === "echo" ? {} : { "content-encoding": enc === "rawdeflate" ? "deflate" : enc }),
      });
      res.end(data);
    });
    const echo = await nodeHttpFetch(new Request(`${url}/echo`, { method: "POST", headers: { "x-api-key": "tml-k" }, body: '{"a":1}' }));
    assert.deepEqual(await echo.json(), { method: "POST", body: '{"a":1}', key: "tml-k", ae: "gzip, deflate, br" });
    assert.equal(echo.url, `${url}/echo`);
    for (const enc of ["gzip", "deflate", "rawdeflate", "br"]) {
      const res = await nodeHttpFetch(new Request(`${url}/${enc}`));
      assert.equal(await res.text(), json, enc);
    }
  });

  test("returns redirects without following them; 204 and HEAD have no body", async () => {
    const { url } = await serve((req, res) => {
      if (req.url === "/moved") {
        res.writeHead(302, { location: "https://elsewhere.example/x", expires: "Thu, 01 Jan 2099 00:00:00 GMT" });
        res.end();
      } else if (req.url === "/empty") {
        res.writeHead(204);
        res.end();
      } else {
        res.writeHead(200, { "content-length": "5" });
        res.end(req.method === "HEAD" ? undefined : "hello");
      }
    });
    const moved = await nodeHttpFetch(new Request(`${url}/moved`, { redirect: "manual" }));
    assert.equal(moved.status, 302);
    assert.equal(moved.headers.get("location"), "https://elsewhere.example/x");
    await assert.rejects(nodeHttpFetch(new Request(`${url}/moved`, { redirect: "error" })), TypeError);
    const empty = await nodeHttpFetch(new Request(`${url}/empty`));
    assert.equal(empty.status, 204);
    assert.equal(empty.body, null);
    const head = await nodeHttpFetch(new Request(`${url}/x`, { method: "HEAD" }));
    assert.equal(head.headers.get("content-length"), "5");
    assert.equal(await head.text(), "");
  });

  test("an abort rejects with the signal's reason, as fetch does; a refused connection is a TypeError with a cause", async () => {
    const { url } = await serve(() => undefined /* never answers */);
    await assert.rejects(nodeHttpFetch(new Request(url, { signal: AbortSignal.timeout(50) })), (err: Error) => err.name === "TimeoutError");
    const controller = new AbortController();
    const reason = new Error("user stop");
    setTimeout(() => controller.abort(reason), 20);
    await assert.rejects(nodeHttpFetch(new Request(url, { signal: controller.signal })), (err) => err === reason);

    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    await assert.rejects(nodeHttpFetch(new Request(`http://127.0.0.1:${port}/`)), (err: Error & { cause?: { code?: string } }) => {
      assert.ok(err instanceof TypeError);
      assert.equal(err.message, "fetch failed");
      assert.equal(err.cause?.code, "ECONNREFUSED");
      return true;
    });
  });

  test("a response cut off mid-body is a TypeError, not a short body", async () => {
    const { url } = await serve((_req, res) => {
      res.writeHead(200, { "content-length": "1000" });
      res.write("x".repeat(100), () => res.socket?.destroy());
    });
    await assert.rejects(nodeHttpFetch(new Request(url)), TypeError);
  });

  test("sequential requests reuse one keep-alive connection", async () => {
    const { url, connections } = await serve((_req, res) => res.end("ok"));
    for (let i = 0; i < 5; i++) assert.equal(await (await nodeHttpFetch(new Request(url))).text(), "ok");
    assert.equal(connections(), 1);
  });
});
