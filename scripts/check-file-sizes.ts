/**
 * The house rule "no source file over 700 lines", checked: lists every `.ts` file under `src/`, `scripts/` and
 * `examples/` longer than that and exits 1 if there is one. Generated code and tests are not held to it.
 *
 *   npm run lint      (runs this after biome)
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const MAX_LINES = 700;
const root = fileURLToPath(new URL("..", import.meta.url));

async function* tsFiles(dir: string): AsyncGenerator<string> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* tsFiles(path);
    else if (entry.name.endsWith(".ts")) yield path;
  }
}

const over: string[] = [];
for (const top of ["src", "scripts", "examples"]) {
  for await (const file of tsFiles(join(root, top))) {
    const text = await readFile(file, "utf8");
    const lines = text.endsWith("\n") ? text.split("\n").length - 1 : text.split("\n").length;
    if (lines > MAX_LINES) over.push(`${file.slice(root.length)}: ${lines} lines`);
  }
}
if (over.length > 0) {
  console.error(`Files over ${MAX_LINES} lines (split them by concern):\n  ${over.join("\n  ")}`);
  process.exit(1);
}
console.log(`No source file over ${MAX_LINES} lines.`);
