/**
 * Redaction: removes secrets (the API key, signed-URL query values, user info) from every text, value and URL
 * an error keeps. Whoever builds an error passes the secrets it knows.
 *
 * @module
 */
/** The text that replaces a secret in messages, bodies and headers. */
export const REDACTED = "[REDACTED]";

/** Secrets shorter than this are not redacted: replacing one or two characters everywhere would garble text. */
const MIN_SECRET_LENGTH = 4;

/**
 * Replaces every occurrence of each secret (and its percent-encoded form) in `text` with `[REDACTED]`.
 *
 * Secrets that are `undefined`, empty or shorter than 4 characters are ignored.
 *
 * @example
 * ```ts
 * redact("bad key tml-abc123", ["tml-abc123"]); // "bad key [REDACTED]"
 * ```
 */
export function redact(text: string, secrets: readonly (string | undefined)[] = []): string {
  let out = text;
  for (const secret of secrets) {
    if (secret === undefined || secret.length < MIN_SECRET_LENGTH) continue;
    out = out.split(secret).join(REDACTED);
    const encoded = encodeURIComponent(secret);
    if (encoded !== secret) out = out.split(encoded).join(REDACTED);
  }
  return out;
}

/**
 * Returns a deep copy of a JSON-like value with every string (values and object keys) passed through
 * {@link redact}. Non-JSON values (numbers, booleans, null, undefined) are returned unchanged.
 *
 * @example
 * ```ts
 * redactValue({ detail: "key tml-abc123 is invalid" }, ["tml-abc123"]); // { detail: "key [REDACTED] is invalid" }
 * ```
 */
export function redactValue(value: unknown, secrets: readonly (string | undefined)[] = []): unknown {
  if (!secrets.some((s) => s !== undefined && s.length >= MIN_SECRET_LENGTH)) return value;
  if (typeof value === "string") return redact(value, secrets);
  if (Array.isArray(value)) return value.map((v) => redactValue(v, secrets));
  if (value !== null && typeof value === "object" && isPlainObject(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[redact(k, secrets)] = redactValue(v, secrets);
    return out;
  }
  return value;
}

function isPlainObject(value: object): boolean {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Query parameter names whose values are replaced by `[REDACTED]` in URLs kept on errors. */
const SENSITIVE_QUERY_PARAM = /key|token|secret|signature|sig$|password|credential|auth/i;

/**
 * Makes a URL safe to store on an error: drops user info, redacts sensitive-looking query parameters
 * (`api_key`, `token`, `X-Amz-Signature`, ...) and every given secret. Unparseable input is only redacted.
 *
 * @example
 * ```ts
 * sanitizeUrl("https://u:p@host/x?token=abc&limit=2"); // "https://host/x?token=%5BREDACTED%5D&limit=2"
 * ```
 */
export function sanitizeUrl(url: string, secrets: readonly (string | undefined)[] = []): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return redact(url, secrets);
  }
  parsed.username = "";
  parsed.password = "";
  for (const name of [...new Set(parsed.searchParams.keys())]) {
    if (SENSITIVE_QUERY_PARAM.test(name)) parsed.searchParams.set(name, REDACTED);
  }
  return redact(parsed.toString(), secrets);
}
