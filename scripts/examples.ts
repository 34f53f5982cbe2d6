/**
 * Turns every TSDoc `@example` code block of `src/` (the SDK; the local server's internals excluded) into a
 * type-checked file under `test/tsdoc-examples/`, so that `tsc --noEmit` fails when an example stops matching
 * the API.
 *
 * Each source module gets one file. Each example becomes the body of an async function, with every export of
 * the public surface (`src/index.ts`) and of its own module imported, and the few free names examples share
 * (`service`, `rest`, `training`, `runId`, ...) imported from test/helpers/example-prelude.ts. `import` lines of an
 * example are hoisted (node: modules) or dropped (the SDK itself, already imported).
 *
 *   npm run examples          # regenerate
 *   npm run examples:check    # fail when test/tsdoc-examples/ is stale (CI)
 *
 * @module
 */
import { mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { readmeSnippets, snippetFile } from "./readme-snippets.js";

const root = fileURLToPath(new URL("../", import.meta.url));
const outDir = path.join(root, "test", "tsdoc-examples");
const check = process.argv.includes("--check");

/** Declares the free names examples may use (`service`, `rest`, ...); each generated file imports them. */
const preludeFile = path.join(root, "test", "helpers", "example-prelude.ts");
/** README.md's ```ts blocks go to test/readme-snippets/ (see scripts/readme-snippets.ts), with these free names. */
const readmeOutDir = path.join(root, "test", "readme-snippets");
const readmePreludeFile = path.join(root, "test", "helpers", "readme-prelude.ts");

/** The names test/helpers/readme-prelude.ts exports (`export const x`, `export const { a, b }`). */
export async function readmePreludeNames(): Promise<string[]> {
  const text = await readFile(readmePreludeFile, "utf8");
  const names = [...text.matchAll(/^export const (\w+)/gm)].map((m) => m[1] as string);
  for (const m of text.matchAll(/^export const \{([^}]*)\}/gm)) names.push(...(m[1] ?? "").split(",").map((n) => n.trim()));
  return names.filter((n) => n !== "");
}

/** Writes (or, with --check, compares) `files` in `dir`, which holds nothing else. */
async function sync(dir: string, files: Map<string, string>, what: string): Promise<boolean> {
  const rel = path.relative(root, dir);
  if (check) {
    const existing = await readdir(dir).catch(() => [] as string[]);
    const stale: string[] = [];
    for (const [name, text] of files) {
      const current = await readFile(path.join(dir, name), "utf8").catch(() => undefined);
      if (current !== text) stale.push(name);
    }
    for (const name of existing) if (!files.has(name)) stale.push(`${name} (no longer generated)`);
    if (stale.length > 0) {
      console.error(`${rel}/ is stale: ${stale.join(", ")}. Run \`npm run examples\` and commit the result.`);
      return false;
    }
    console.log(`${rel}/ is current (${what}).`);
    return true;
  }
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  for (const [name, text] of files) await writeFile(path.join(dir, name), text);
  console.log(`wrote ${what} to ${rel}/`);
  return true;
}

async function sourceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== "server") out.push(...(await sourceFiles(p)));
    } else if (e.name.endsWith(".ts")) out.push(p);
  }
  return out.sort();
}

/** The ```ts blocks of every @example tag in `text`. */
function examplesOf(text: string): string[] {
  const blocks: string[] = [];
  for (const doc of text.matchAll(/\/\*\*([\s\S]*?)\*\//g)) {
    const lines = (doc[1] ?? "").split("\n").map((l) => l.replace(/^\s*\* ?/, ""));
    let inExample = false;
    let fence: string[] | undefined;
    for (const line of lines) {
      if (/^@\w+/.test(line)) inExample = line.startsWith("@example");
      if (!inExample) continue;
      if (fence === undefined && /^```(ts|typescript)\s*$/.test(line.trim())) fence = [];
      else if (fence !== undefined && line.trim() === "```") {
        blocks.push(fence.join("\n"));
        fence = undefined;
      } else if (fence !== undefined) fence.push(line);
    }
  }
  return blocks;
}

/** Exported names of a module, split into values and type-only names. */
function exportsOf(program: ts.Program, file: string): { values: string[]; types: string[] } {
  const checker = program.getTypeChecker();
  const sf = program.getSourceFile(file);
  const values: string[] = [];
  const types: string[] = [];
  if (sf === undefined) return { values, types };
  const symbol = checker.getSymbolAtLocation(sf);
  if (symbol === undefined) return { values, types };
  for (const exp of checker.getExportsOfModule(symbol)) {
    const target = exp.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exp) : exp;
    const isValue = (target.flags & ts.SymbolFlags.Value) !== 0 && !(exp.flags & ts.SymbolFlags.Alias && isTypeOnlyAlias(exp));
    (isValue ? values : types).push(exp.name);
  }
  return { values: values.sort(), types: types.sort() };
}

function isTypeOnlyAlias(symbol: ts.Symbol): boolean {
  return (symbol.declarations ?? []).some((d) => ts.isTypeOnlyImportOrExportDeclaration(d));
}

function importLine(names: string[], types: string[], from: string): string {
  const parts = [...names, ...types.map((t) => `type ${t}`)];
  return parts.length === 0 ? "" : `import { ${parts.join(", ")} } from "${from}";\n`;
}

async function main(): Promise<void> {
  const files = await sourceFiles(path.join(root, "src"));
  const program = ts.createProgram(files, {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
  });
  const indexFile = path.join(root, "src", "index.ts");
  const publicExports = exportsOf(program, indexFile);
  const publicNames = new Set([...publicExports.values, ...publicExports.types]);
  const preludeNames = [...(await readFile(preludeFile, "utf8")).matchAll(/^export declare const (\w+)/gm)].map((m) => m[1] as string);
  const preludeSet = new Set(preludeNames);

  const generated = new Map<string, string>();
  let total = 0;
  for (const file of files) {
    const examples = examplesOf(await readFile(file, "utf8"));
    if (examples.length === 0) continue;
    const rel = path.relative(path.join(root, "src"), file);
    const fromTest = (p: string): string => path.relative(outDir, p).split(path.sep).join("/").replace(/\.ts$/, ".js");
    const own = exportsOf(program, file);
    // A class the public surface exports as a type only (e.g. Transport) is imported as a value from its module.
    const publicValues = new Set(publicExports.values);
    const ownValues = own.values.filter((n) => !publicValues.has(n) && !preludeSet.has(n));
    const ownTypes = own.types.filter((n) => !publicNames.has(n));
    const publicTypesExcept = (hoistedNames: Set<string>): string[] =>
      publicExports.types.filter((n) => file === indexFile || (!ownValues.includes(n) && !hoistedNames.has(n)));
    const hoisted = new Set<string>();
    const bodies: string[] = [];
    examples.forEach((code, i) => {
      const kept: string[] = [];
      for (const line of code.split("\n")) {
        const imp = /^import\s+(.*)\s+from\s+["']([^"']+)["'];?\s*$/.exec(line.trim());
        if (imp !== null) {
          const [, clause = "", spec = ""] = imp;
          if (!spec.startsWith(".") && spec !== "tinker-ts")
            hoisted.add(line.trim()); // node: modules, dependencies
          else if (spec.startsWith(".")) {
            // Relative to the documented module: kept (re-pointed), minus what is imported already.
            const target = path.resolve(path.dirname(file), spec).replace(/\.js$/, ".ts");
            const named = /^(type\s+)?\{([^}]*)\}$/.exec(clause.trim());
            if (target !== indexFile && named !== null) {
              const targetValues = new Set(exportsOf(program, target).values);
              const taken = new Set([
                ...publicExports.values,
                ...publicExports.types.filter((n) => !targetValues.has(n)),
                ...(target === file ? [...own.values, ...own.types] : []),
              ]);
              const names = (named[2] ?? "")
                .split(",")
                .map((n) => n.trim())
                .filter((n) => n !== "" && !taken.has(n.replace(/^type\s+/, "")));
              if (names.length > 0) hoisted.add(`import ${named[1] ?? ""}{ ${names.join(", ")} } from "${fromTest(target)}";`);
            }
          }
          continue; // "tinker-ts" itself: everything public is imported already
        }
        kept.push(line);
      }
      while (kept.length > 0 && (kept[0] as string).trim() === "") kept.shift();
      bodies.push(
        `// ${rel}, example ${i + 1}\nexport async function example${i + 1}() {\n${kept.map((l) => (l === "" ? "" : `  ${l}`)).join("\n")}\n}\n`,
      );
      total++;
    });
    const header =
      `// Generated by scripts/examples.ts from the TSDoc @example blocks of src/${rel.split(path.sep).join("/")}: do not edit.\n` +
      `// Regenerate with \`npm run examples\`; \`tsc --noEmit\` type-checks it.\n`;
    const hoistedNames = new Set([...hoisted].flatMap((l) => (/\{([^}]*)\}/.exec(l)?.[1] ?? "").split(",").map((n) => n.trim())));
    const publicTypes = publicTypesExcept(hoistedNames);
    const imports =
      [...hoisted]
        .sort()
        .map((l) => `${l.replace(/;?$/, ";")}\n`)
        .join("") +
      importLine(
        publicExports.values.filter((n) => !preludeSet.has(n)),
        publicTypes,
        fromTest(indexFile),
      ) +
      (file === indexFile ? "" : importLine(ownValues, ownTypes, fromTest(file))) +
      importLine(preludeNames, [], fromTest(preludeFile));
    const name = `${rel.replace(/\.ts$/, "").split(path.sep).join("-")}.typetest.ts`;
    generated.set(name, `${header}${imports}\n${bodies.join("\n")}`);
  }

  const readme = readmeSnippets(await readFile(path.join(root, "README.md"), "utf8"));
  const readmePrelude = await readmePreludeNames();
  const readmeFiles = new Map(
    readme
      .filter((snippet) => snippet.run)
      .map((snippet) => [
        snippet.file,
        snippetFile(snippet, publicExports, readmePrelude, { sdk: "tinker-ts", prelude: "../helpers/readme-prelude.js" }),
      ]),
  );
  const ok = [
    await sync(outDir, generated, `${total} examples from ${generated.size} modules`),
    await sync(readmeOutDir, readmeFiles, `${readmeFiles.size} README.md snippets, ${readme.length - readmeFiles.size} no-run`),
  ];
  if (ok.includes(false)) process.exit(1);
}

await main();
