/**
 * The drift check as a function: read the SDK and spec/, compare, apply the allowlist, render the report.
 */
import { existsSync, readFileSync } from "node:fs";
import { parse } from "yaml";
import { compare, type Difference, type RouteAlias } from "./compare.js";
import { readSpec } from "./openapi.js";
import { readSdk } from "./python-sdk.js";

/** One accepted difference: its id as the report prints it (a `*` matches any run of characters) and why. */
export interface AllowEntry {
  id: string;
  reason: string;
}

export interface Allowlist {
  routes: RouteAlias[];
  differences: AllowEntry[];
}

export interface DriftResult {
  /** Every difference, with the allowlist entry that accepts it, if any. */
  differences: (Difference & { allowedBy?: AllowEntry })[];
  /** Allowlist entries (and route aliases) that matched nothing. */
  stale: (AllowEntry | RouteAlias)[];
  /** 0: nothing unexplained; 1: unlisted differences or stale entries. */
  exitCode: 0 | 1;
  report: string;
}

/** Reads and checks spec/drift-allowlist.yaml; a missing file is an empty list. */
export function readAllowlist(path: string): Allowlist {
  if (!existsSync(path)) return { routes: [], differences: [] };
  const doc = (parse(readFileSync(path, "utf8")) ?? {}) as { routes?: unknown; differences?: unknown };
  const problems: string[] = [];
  const routes = (Array.isArray(doc.routes) ? doc.routes : []) as RouteAlias[];
  const differences = (Array.isArray(doc.differences) ? doc.differences : []) as AllowEntry[];
  routes.forEach((r, i) => {
    if (typeof r?.sdk !== "string" || typeof r?.spec !== "string") problems.push(`routes[${i}] needs "sdk" and "spec" ("METHOD /path")`);
    if (typeof r?.reason !== "string" || r.reason.trim() === "") problems.push(`routes[${i}] needs a non-empty "reason"`);
  });
  differences.forEach((d, i) => {
    if (typeof d?.id !== "string" || d.id.trim() === "") problems.push(`differences[${i}] needs an "id" (a line of the report)`);
    if (typeof d?.reason !== "string" || d.reason.trim() === "")
      problems.push(`differences[${i}] (${String(d?.id)}) needs a non-empty "reason"`);
  });
  if (problems.length > 0) throw new Error(`${path} is not a valid allowlist:\n  ${problems.join("\n  ")}`);
  return { routes, differences };
}

/** An id matches itself; a `*` in an entry matches any run of characters. */
function matches(entry: AllowEntry, id: string): boolean {
  if (!entry.id.includes("*")) return entry.id === id;
  const pattern = entry.id
    .split("*")
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
    .join(".*");
  return new RegExp(`^${pattern}$`).test(id);
}

export interface DriftOptions {
  sdkDir: string;
  specDir: string;
  allowlistPath: string;
}

/** Runs the whole check. Throws (with a message saying what to do) when an input cannot be read. */
export function runDrift(options: DriftOptions): DriftResult {
  const sdk = readSdk(options.sdkDir);
  const spec = readSpec(options.specDir);
  const allowlist = readAllowlist(options.allowlistPath);
  const { differences, usedRoutes, uncompared } = compare(sdk, spec, allowlist.routes);
  if (sdk.proto && !spec.proto) {
    differences.push({
      subject: "proto",
      detail: "spec/tinker_public.proto missing",
      id: "proto: spec/tinker_public.proto missing",
      where: `the SDK defines ${sdk.proto.messages.length} messages and ${sdk.proto.enums.length} enums, not compared`,
    });
  }
  const used = new Set<AllowEntry>();
  const result: DriftResult["differences"] = differences.map((d) => {
    const entry = allowlist.differences.find((e) => matches(e, d.id));
    if (entry) used.add(entry);
    return entry ? { ...d, allowedBy: entry } : d;
  });
  const stale = [...allowlist.routes.filter((r) => !usedRoutes.has(r)), ...allowlist.differences.filter((e) => !used.has(e))];
  const unlisted = result.filter((d) => !d.allowedBy);
  const exitCode = unlisted.length > 0 || stale.length > 0 ? 1 : 0;

  const lines: string[] = [];
  lines.push(`spec drift: Python SDK ${sdk.version ?? "(version unknown)"} at ${options.sdkDir} vs ${options.specDir}`);
  lines.push(
    `read: SDK ${sdk.endpoints.length} calls, ${sdk.models.size} models, ${sdk.aliases.size} aliases, ` +
      `${sdk.proto ? `${sdk.proto.messages.length} proto messages` : "no proto"}; spec ${spec.endpoints.length} operations, ` +
      `${spec.models.size + spec.aliases.size} schemas, ${spec.proto ? `${spec.proto.messages.length} proto messages` : "no .proto"}`,
  );
  if (usedRoutes.size > 0) {
    lines.push("", "route aliases used:");
    for (const r of usedRoutes) lines.push(`  ${r.sdk}  =>  ${r.spec}   (${r.reason})`);
  }
  let subject = "";
  for (const d of result) {
    if (d.subject !== subject) {
      subject = d.subject;
      lines.push("", subject);
    }
    const where = d.where ? `  [${d.where}]` : "";
    lines.push(d.allowedBy ? `  allowed  ${d.detail}  (${d.allowedBy.reason})` : `  DRIFT    ${d.detail}${where}`);
  }
  if (uncompared.length > 0) {
    lines.push(
      "",
      `for information: ${uncompared.length} SDK models no compared endpoint reaches and spec/ does not define ` +
        "(internal, or used by an endpoint missing from spec):",
      `  ${uncompared.join(", ")}`,
    );
  }
  if (stale.length > 0) {
    lines.push("", "stale allowlist entries (they match nothing now; delete them from the allowlist):");
    for (const s of stale) lines.push("id" in s ? `  - ${s.id}` : `  - route ${s.sdk} => ${s.spec}`);
  }
  lines.push(
    "",
    `${result.length} difference(s): ${result.length - unlisted.length} allowed, ${unlisted.length} not in the allowlist; ` +
      `${stale.length} stale allowlist entr${stale.length === 1 ? "y" : "ies"}.`,
  );
  if (unlisted.length > 0) {
    lines.push(
      "Fix spec/ (then `npm run generate`), or add the line after DRIFT, prefixed by its group, to spec/drift-allowlist.yaml with a reason.",
    );
  }
  return { differences: result, stale, exitCode, report: lines.join("\n") };
}
