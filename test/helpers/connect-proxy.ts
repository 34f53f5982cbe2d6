/**
 * A small HTTP proxy for tests: a real node:http server on 127.0.0.1 that answers `CONNECT host:port` by opening a
 * TCP tunnel (or refusing with a chosen status), records every CONNECT with its headers, and counts the bytes
 * sent back through its tunnels. Requests in absolute form (`GET http://…`) are refused with 405 and recorded.
 * Names under `.test` (RFC 6761, never resolvable) are tunnelled to 127.0.0.1: a test addresses a loopback server
 * as `origin.test` when a client must send it through the proxy (loopback names and IPs go direct with proxies
 * from the environment), and the client itself never resolves the name.
 *
 * @example
 * ```ts
 * const proxy = await startConnectProxy({ credentials: "me:s3cret" }); // answers 407 without them
 * // ... HTTPS_PROXY=proxy.urlWith("me:s3cret") ...
 * proxy.connects[0]?.target; // "127.0.0.1:8000"
 * await proxy.close();
 * ```
 */
import { createServer, type IncomingHttpHeaders } from "node:http";
import net, { type AddressInfo } from "node:net";

/** One CONNECT the proxy received. */
export interface SeenConnect {
  /** `host:port` asked for. */
  target: string;
  /** The request's headers (lower-case names). */
  headers: IncomingHttpHeaders;
}

/** Options of {@link startConnectProxy}. */
export interface ConnectProxyOptions {
  /** `user:password` the proxy requires (as Basic `Proxy-Authorization`); otherwise 407. */
  credentials?: string;
  /** Answer every CONNECT with this status instead of opening a tunnel (e.g. 403, 502). */
  refuseWith?: number;
}

/** A running test proxy. */
export interface ConnectProxy {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  /** The proxy URL with credentials, e.g. `http://me:s3cret@127.0.0.1:<port>` (`userinfo` as given, encode it yourself). */
  urlWith(userinfo: string): string;
  port: number;
  /** Every CONNECT, in order. */
  connects: SeenConnect[];
  /** Tunnels opened (CONNECTs answered 200). */
  readonly tunnels: number;
  /** Bytes sent from targets to clients through the tunnels. */
  readonly bytesDown: number;
  /** Absolute-form requests received (never expected). */
  plainRequests: string[];
  close(): Promise<void>;
}

/**
 * Starts the proxy.
 *
 * @example
 * ```ts
 * const proxy = await startConnectProxy({ refuseWith: 502 });
 * ```
 */
export async function startConnectProxy(options: ConnectProxyOptions = {}): Promise<ConnectProxy> {
  const connects: SeenConnect[] = [];
  const plainRequests: string[] = [];
  const sockets = new Set<net.Socket>();
  let tunnels = 0;
  let bytesDown = 0;
  const expected = options.credentials === undefined ? undefined : `Basic ${Buffer.from(options.credentials).toString("base64")}`;
  const server = createServer((req, res) => {
    plainRequests.push(`${req.method} ${req.url}`);
    res.writeHead(405, { connection: "close" }).end();
  });
  server.on("connect", (req, client: net.Socket, head: Buffer) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => undefined);
    const target = req.url ?? "";
    connects.push({ target, headers: req.headers });
    if (expected !== undefined && req.headers["proxy-authorization"] !== expected) {
      client.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    if (options.refuseWith !== undefined) {
      client.end(`HTTP/1.1 ${options.refuseWith} Refused By Test\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    const colon = target.lastIndexOf(":");
    const name = target.slice(0, colon).replace(/^\[|\]$/g, "");
    const host = name.endsWith(".test") ? "127.0.0.1" : name;
    const upstream = net.connect({ host, port: Number(target.slice(colon + 1)) }, () => {
      tunnels++;
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length > 0) upstream.write(head);
      upstream.on("data", (chunk: Buffer) => {
        bytesDown += chunk.length;
      });
      upstream.pipe(client);
      client.pipe(upstream);
    });
    sockets.add(upstream);
    upstream.on("close", () => {
      sockets.delete(upstream);
      client.destroy();
    });
    client.on("close", () => upstream.destroy());
    upstream.on("error", () => client.end("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    urlWith: (userinfo) => `http://${userinfo}@127.0.0.1:${port}`,
    port,
    connects,
    get tunnels() {
      return tunnels;
    },
    get bytesDown() {
      return bytesDown;
    },
    plainRequests,
    close: async () => {
      for (const s of sockets) s.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
