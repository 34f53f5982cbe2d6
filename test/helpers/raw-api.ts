// A raw HTTP caller of the local server for tests that check the wire itself: one request with the server's API
// key (or another), a JSON body (or a string as is), redirects not followed, the answer's JSON parsed when it is
// JSON and kept as text otherwise.
import type { LocalServer } from "../../src/server/index.js";

// biome-ignore lint/suspicious/noExplicitAny: parsed JSON answers of the server, read field by field as the tests assert
export type AnyJson = any;

/** One answer: status, headers and the parsed body (`undefined` when empty). */
export type Answer = { status: number; headers: Headers; body: AnyJson };

/** A caller bound to `server` that sends `key` as `x-api-key` (default: the server's own key). */
export function rawApi(server: LocalServer, key: string = server.apiKey) {
  return async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> => {
    const r = await fetch(`${server.baseUrl}${path}`, {
      method,
      headers: { "x-api-key": key, ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
      redirect: "manual",
    });
    const text = await r.text();
    let parsed: AnyJson;
    try {
      parsed = text === "" ? undefined : JSON.parse(text);
    } catch {
      parsed = text;
    }
    return { status: r.status, headers: r.headers, body: parsed };
  };
}

/** The type of a {@link rawApi} caller. */
export type Api = ReturnType<typeof rawApi>;
