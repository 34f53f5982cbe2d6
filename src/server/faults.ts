/**
 * Fault injection for the local server (off by default).
 *
 * ## How to use
 *
 * Pass `faults` to `startLocalServer`, call `server.setFaults(rules)` / `server.clearFaults()`, or use the
 * admin endpoint (it needs a valid `X-API-Key`):
 *
 * ```text
 * POST   /local/admin/faults   {"rules": [FaultRule, ...]}   replace the active rules → {"rules": n}
 * DELETE /local/admin/faults                                 remove every rule        → 204
 * ```
 *
 * Every incoming request (except `/local/admin/*`) is checked against the rules in order; the first rule
 * that matches and fires decides what happens:
 *
 * | field           | meaning                                                                       |
 * |-----------------|-------------------------------------------------------------------------------|
 * | `path`          | URL path prefix (an exact path is a prefix of itself); absent = every path    |
 * | `method`        | HTTP method (case-insensitive); absent = every method                         |
 * | `times`         | fire for the next N matching requests only, then the rule is spent           |
 * | `probability`   | fire for this fraction (0–1) of matching requests, from a seeded PRNG         |
 * | `seed`          | PRNG seed for `probability` (default 1), so runs are reproducible             |
 * | `status`        | answer with this status and `{"detail":"injected fault"}`                     |
 * | `retryAfter`    | with `status`: a `Retry-After` header (seconds)                               |
 * | `drop`          | destroy the connection without answering                                      |
 * | `cutAfterBytes` | let the request through, but send only K bytes of the response body, then     |
 * |                 | destroy the connection (for testing resumable downloads)                      |
 * | `loseResponse`  | let the request through and do its work, then destroy the connection instead |
 * |                 | of answering (the answer is lost after the work was done)                    |
 *
 * Without `times` a rule fires on every match (subject to `probability`). A rule with none of `status`,
 * `drop`, `cutAfterBytes`, `loseResponse` has no effect.
 *
 * @module
 */

import { z } from "zod";
import { mulberry32 } from "./model/rng.js";

/** One fault-injection rule; see the module documentation for the semantics of each field. */
export type FaultRule = {
  /** URL path prefix (or exact path) the rule applies to; absent matches every path. */
  path?: string;
  /** HTTP method the rule applies to; absent matches every method. */
  method?: string;
  /** Fire only for the next N matching requests. */
  times?: number;
  /** Fraction (0–1) of matching requests that fire, drawn from a deterministic PRNG. */
  probability?: number;
  /** Seed of the PRNG used by `probability` (default 1). */
  seed?: number;
  /** Answer with this HTTP status and `{"detail":"injected fault"}`. */
  status?: number;
  /** `Retry-After` header value in seconds (with `status`). */
  retryAfter?: number;
  /** Destroy the connection without answering. */
  drop?: true;
  /** Send only this many bytes of the response body, then destroy the connection. */
  cutAfterBytes?: number;
  /** Do the work, then destroy the connection instead of answering. */
  loseResponse?: true;
};

/** Zod schema of {@link FaultRule} (used by the admin endpoint). */
export const faultRuleSchema = z.object({
  path: z.string().optional(),
  method: z.string().optional(),
  times: z.number().int().min(0).optional(),
  probability: z.number().min(0).max(1).optional(),
  seed: z.number().int().optional(),
  status: z.number().int().min(100).max(599).optional(),
  retryAfter: z.number().min(0).optional(),
  drop: z.literal(true).optional(),
  cutAfterBytes: z.number().int().min(0).optional(),
  loseResponse: z.literal(true).optional(),
});

/** What to do with a request. */
export type FaultAction =
  | { kind: "status"; status: number; retryAfter: number | undefined }
  | { kind: "drop" }
  | { kind: "cut"; bytes: number }
  | { kind: "lose" };

type ActiveRule = { rule: FaultRule; remaining: number | undefined; random: () => number };

/** The active fault rules of one server. */
export class FaultInjector {
  #rules: ActiveRule[] = [];
  #fired = 0;

  /** How many faults fired since the server started. */
  get fired(): number {
    return this.#fired;
  }

  /** Replaces the active rules. */
  set(rules: readonly FaultRule[]): void {
    this.#rules = rules.map((rule) => ({
      rule: { ...rule },
      remaining: rule.times,
      random: mulberry32(rule.seed ?? 1),
    }));
  }

  /** Removes every rule. */
  clear(): void {
    this.#rules = [];
  }

  /** Number of rules that can still fire. */
  get activeCount(): number {
    return this.#rules.filter((r) => r.remaining === undefined || r.remaining > 0).length;
  }

  /** Decides the fault (if any) for a request; consumes `times` budget of the rule that fires. */
  match(method: string, path: string): FaultAction | undefined {
    for (const active of this.#rules) {
      const { rule } = active;
      if (active.remaining !== undefined && active.remaining <= 0) continue;
      if (rule.method !== undefined && rule.method.toUpperCase() !== method.toUpperCase()) continue;
      if (rule.path !== undefined && !path.startsWith(rule.path)) continue;
      if (rule.status === undefined && rule.drop !== true && rule.cutAfterBytes === undefined && rule.loseResponse !== true) continue;
      if (rule.probability !== undefined && !(active.random() < rule.probability)) continue;
      if (active.remaining !== undefined) active.remaining--;
      this.#fired++;
      if (rule.drop === true) return { kind: "drop" };
      if (rule.status !== undefined) return { kind: "status", status: rule.status, retryAfter: rule.retryAfter };
      if (rule.loseResponse === true) return { kind: "lose" };
      return { kind: "cut", bytes: rule.cutAfterBytes! };
    }
    return undefined;
  }
}
