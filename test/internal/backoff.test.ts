/**
 * backoffMs and retryAfterMs (src/internal/backoff.ts): the one formula behind every wait between attempts
 * (HTTP retries, future polling, download reconnects, the archive wait) and the one Retry-After parser.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { backoffMs, retryAfterMs } from "../../src/internal/backoff.js";

describe("backoff", () => {
  test("doubles from initialMs and stops at maxMs", () => {
    const policy = { initialMs: 500, maxMs: 30_000, jitter: 0 };
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 6, 7].map((a) => backoffMs(a, policy)),
      [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000],
    );
  });

  test("jitter removes at most its fraction of the delay", () => {
    const policy = { initialMs: 1000, maxMs: 8000, jitter: 0.25 };
    assert.equal(
      backoffMs(0, policy, () => 0),
      1000,
    );
    assert.equal(
      backoffMs(0, policy, () => 1),
      750,
    );
    assert.equal(
      backoffMs(3, policy, () => 0.5),
      7000,
    );
  });

  test("Retry-After in seconds, in ms, or as an HTTP date; ignored outside 0-60 s", () => {
    assert.equal(retryAfterMs(new Headers({ "retry-after": "2" })), 2000);
    assert.equal(retryAfterMs(new Headers({ "retry-after-ms": "250", "retry-after": "9" })), 250);
    const inTenSeconds = new Date(Date.now() + 10_000).toUTCString();
    const fromDate = retryAfterMs(new Headers({ "retry-after": inTenSeconds }));
    assert.ok(fromDate !== undefined && fromDate > 8_000 && fromDate <= 10_000, `got ${fromDate}`);
    assert.equal(retryAfterMs(new Headers({ "retry-after": "61" })), undefined);
    assert.equal(retryAfterMs(new Headers({ "retry-after": "-1" })), undefined);
    assert.equal(retryAfterMs(new Headers({ "retry-after": "soon" })), undefined);
    assert.equal(retryAfterMs(new Headers()), undefined);
  });
});
