/**
 * Fails when a `*.test.ts` file exists that `npm test` does not run. Node 20's `--test` does not expand `**`, so the
 * test command names each folder (`test/*.test.ts test/server/*.test.ts ...`); a test file added to a new folder
 * would otherwise be skipped silently. Run by `npm test` itself (first) and by `.ci/run`.
 *
 *   tsx scripts/check-tests.ts
 *
 * @module
 */
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../", import.meta.url));

/** Every `*.test.ts` under `dir` (recursively), relative to the repository root, with `/` separators. */
async function testFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(path.join(root, dir), { withFileTypes: true })) {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) {
      if (e.name !== "node_modules" && e.name !== "fixtures") out.push(...(await testFiles(rel)));
    } else if (e.name.endsWith(".test.ts")) out.push(rel);
  }
  return out.sort();
}

/** The globs of the `test` script (the `test/...*.test.ts` words of the `tsx --test` command). */
async function testGlobs(): Promise<string[]> {
  const pkg = JSON.parse(await readFile(path.join(root, "package.json"), "utf8")) as { scripts?: Record<string, string> };
  const command = pkg.scripts?.["test"] ?? "";
  const run =
    command
      .split("&&")
      .map((s) => s.trim())
      .find((s) => s.includes("--test ")) ?? "";
  return run.split(/\s+/).filter((w) => w.startsWith("test/") && w.endsWith(".test.ts"));
}

/** What the shell makes of a glob of one `*` per path segment (no `**`, as Node 20's --test needs). */
function matches(glob: string, file: string): boolean {
  const re = new RegExp(
    `^${glob
      .split("*")
      .map((part) => part.replace(/[.+?^${}()|[\]\\/]/g, "\\$&"))
      .join("[^/]*")}$`,
  );
  return re.test(file);
}

const files = await testFiles("test");
const globs = await testGlobs();
const missed = files.filter((f) => !globs.some((g) => matches(g, f)));
if (globs.length === 0) {
  console.error("check-tests: the package.json test script names no test/...*.test.ts glob.");
  process.exit(1);
}
if (missed.length > 0) {
  console.error(
    `check-tests: ${missed.length} of ${files.length} test files are not run by \`npm test\` (${globs.join(" ")}): ${missed.join(", ")}. ` +
      "Add their folder to the test script in package.json (and to the README's test command).",
  );
  process.exit(1);
}
console.log(`check-tests: npm test runs all ${files.length} test files (${globs.join(" ")}).`);
