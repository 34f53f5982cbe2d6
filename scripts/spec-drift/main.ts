/**
 * `npm run spec:drift -- <sdk-dir> [--spec <dir>] [--allowlist <file>] [--json]`
 *
 * Compares a checkout of the official Python SDK (a repository root with src/tinker, or the tinker package
 * folder) with spec/ and exits 1 when a difference is not in the allowlist or an allowlist entry is stale.
 */
import { resolve } from "node:path";
import { runDrift } from "./drift.js";

const USAGE = "usage: npm run spec:drift -- <python-sdk-dir> [--spec <dir>] [--allowlist <file>] [--json]";

function main(argv: string[]): number {
  let sdkDir: string | undefined;
  let specDir = "spec";
  let allowlistPath: string | undefined;
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--spec") specDir = argv[++i] ?? "";
    else if (a === "--allowlist") allowlistPath = argv[++i] ?? "";
    else if (a === "--json") json = true;
    else if (a === "--help" || a === "-h") {
      console.log(USAGE);
      return 0;
    } else if (a.startsWith("-")) {
      console.error(`unknown option ${a}\n${USAGE}`);
      return 2;
    } else sdkDir = a;
  }
  if (!sdkDir) {
    console.error(
      `${USAGE}\nThe SDK source: git clone https://github.com/thinking-machines-lab/tinker (or pip download tinker and unpack it).`,
    );
    return 2;
  }
  try {
    const result = runDrift({
      sdkDir: resolve(sdkDir),
      specDir: resolve(specDir),
      allowlistPath: resolve(allowlistPath ?? `${specDir}/drift-allowlist.yaml`),
    });
    if (json) console.log(JSON.stringify({ differences: result.differences, stale: result.stale, exitCode: result.exitCode }, null, 2));
    else console.log(result.report);
    return result.exitCode;
  } catch (error) {
    console.error(`spec:drift: ${(error as Error).message}`);
    return 2;
  }
}

process.exitCode = main(process.argv.slice(2));
