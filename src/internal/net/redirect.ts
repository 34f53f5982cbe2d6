/**
 * THE redirect follower of tinker-ts, shared by the retrying fetch (REST calls) and leanGet (downloads):
 * which statuses are redirects, how many are followed, how the method changes, and which headers never cross
 * to another origin (a parameter: the REST client's credentials; nothing for downloads, which carry none).
 *
 * @module
 */

/** The statuses that are followed (the fetch standard's redirect statuses); any other 3xx is returned as is. */
export const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);

/** The credential headers the REST client strips when a redirect leaves the first origin. */
export const CREDENTIAL_HEADERS = [
  "x-api-key",
  "authorization",
  "proxy-authorization",
  "cookie",
  "cf-access-client-id",
  "cf-access-client-secret",
] as const;

/** One request of a redirect chain. Header names are matched case-insensitively. */
export interface Hop {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: ArrayBuffer | null;
}

/** What the follower needs to know of a response. */
export interface HopAnswer {
  status: number;
  /** The `Location` header, if any. */
  location: string | null | undefined;
  /** Releases the response (cancel its body, close its socket) before the next hop. */
  discard(): unknown;
}

/** How a chain is followed. */
export interface RedirectRules {
  /** Redirects followed at most (0: return the first response, whatever it is). */
  maxRedirects: number;
  /**
   * Header names removed, for the rest of the chain, once a redirect leaves the first origin (scheme, host or
   * port): pass {@link CREDENTIAL_HEADERS} so the API key never reaches another host; `[]` keeps every header.
   */
  stripOnCrossOrigin: readonly string[];
  /** Builds the error thrown when a response still redirects after `maxRedirects`; without it that response is returned. */
  tooMany?: (maxRedirects: number) => Error;
}

/**
 * Sends `first`, then follows redirects by the rules: a redirect status with a usable `Location` is followed;
 * 303 (except for HEAD), and 301/302 after a POST, continue as a GET without body or content headers; other
 * redirects keep the method and body. A missing or unparseable `Location` ends the chain with that response.
 *
 * @example
 * ```ts
 * const res = await followRedirects(
 *   { url: "http://127.0.0.1:8000/a", method: "GET", headers: { "x-api-key": "tml-local" }, body: null },
 *   (hop) => fetch(hop.url, { method: hop.method, headers: hop.headers, redirect: "manual" }),
 *   (r) => ({ status: r.status, location: r.headers.get("location"), discard: () => r.body?.cancel() }),
 *   { maxRedirects: 10, stripOnCrossOrigin: CREDENTIAL_HEADERS },
 * );
 * ```
 */
export async function followRedirects<R>(
  first: Hop,
  send: (hop: Hop) => Promise<R>,
  read: (res: R) => HopAnswer,
  rules: RedirectRules,
): Promise<R> {
  const origin = new URL(first.url).origin;
  let hop = first;
  let stripped = false;
  for (let n = 0; ; n++) {
    const res = await send(hop);
    const answer = read(res);
    if (!REDIRECT_STATUSES.has(answer.status) || answer.location === null || answer.location === undefined) return res;
    if (n >= rules.maxRedirects) {
      if (rules.tooMany === undefined) return res;
      await Promise.resolve(answer.discard()).catch(() => undefined);
      throw rules.tooMany(rules.maxRedirects);
    }
    let next: URL;
    try {
      next = new URL(answer.location, hop.url);
    } catch {
      return res;
    }
    await Promise.resolve(answer.discard()).catch(() => undefined);
    let { method, headers, body } = hop;
    if (next.origin !== origin && !stripped) {
      // Another host (or scheme, or port) never sees these headers, for the rest of this chain too.
      headers = withoutHeaders(headers, rules.stripOnCrossOrigin);
      stripped = true;
    }
    if ((answer.status === 303 && method !== "HEAD") || ((answer.status === 301 || answer.status === 302) && method === "POST")) {
      method = "GET";
      body = null;
      headers = withoutHeaders(headers, ["content-type", "content-length"]);
    }
    hop = { url: next.toString(), method, headers, body };
  }
}

function withoutHeaders(headers: Record<string, string>, names: readonly string[]): Record<string, string> {
  if (names.length === 0) return headers;
  const drop = new Set(names.map((n) => n.toLowerCase()));
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !drop.has(name.toLowerCase())));
}
