/**
 * README.md's ```ts blocks as runnable files. Used by scripts/examples.ts (which writes them to
 * test/readme-snippets/, type-checked by `tsc --noEmit`) and by test/readme-snippets.test.ts (which checks the
 * files are current and runs each against a local server).
 *
 * The convention (also in README.md, Development):
 * - Every block fenced ```ts (or ```typescript) is a module of its own that runs, top-level `await` included.
 * - It may use without importing them any export of `tinker-ts`, and the names that test/helpers/readme-prelude.ts
 *   creates against the server (`service`, `rest`, `training`, `runId`, `batch`, `nextBatch`, `tinkerPath`,
 *   `lastCheckpointPath`, `promptTokens`, `completionTokens`, `samplerLogprobs`, `advantage`); a name the block
 *   declares or imports itself is its own.
 * - ```ts continues  appends the block to the previous ```ts block: they run (and type-check) as one.
 * - ```ts no-run     is neither run nor type-checked (no file is written for it): only for what cannot run here
 *   (a real proxy, a package this repository does not install). The test fails when more than {@link MAX_NO_RUN}
 *   blocks are fenced so.
 *
 * @module
 */
import ts from "typescript";

/** How many ```ts no-run blocks README.md may have before the snippet test fails. */
export const MAX_NO_RUN = 3;

/** One runnable unit of README.md: a ```ts block and the ```ts continues blocks after it. */
export interface ReadmeSnippet {
  /** File name under test/readme-snippets/: `NN-<heading>.ts` (numbered over all blocks; none is written for no-run). */
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** The nearest heading above the block. */
  heading: string;
  /** The code, verbatim (blocks joined by a blank line). */
  code: string;
  /** False for ```ts no-run. */
  run: boolean;
}

const FLAGS = new Set(["no-run", "continues"]);

function slug(heading: string): string {
  return (
    heading
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-|-$/g, "")
      .slice(0, 40)
      .replace(/-$/, "") || "top"
  );
}

/** The ```ts blocks of a Markdown text, `continues` blocks merged into the block before them. */
export function readmeSnippets(markdown: string): ReadmeSnippet[] {
  const lines = markdown.split("\n");
  const out: Omit<ReadmeSnippet, "file">[] = [];
  let heading = "";
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    const h = /^#{1,6}\s+(.*)$/.exec(line);
    if (h !== null) {
      heading = (h[1] ?? "").trim();
      continue;
    }
    const fence = /^(`{3,})\s*(\S*)\s*(.*)$/.exec(line);
    if (fence === null) continue;
    const [, ticks = "```", lang = "", info = ""] = fence;
    const body: string[] = [];
    let j = i + 1;
    while (j < lines.length && (lines[j] as string).trim() !== ticks) body.push(lines[j++] as string);
    if (j >= lines.length) throw new Error(`README.md:${i + 1}: the code block is never closed`);
    const start = i + 1;
    i = j;
    if (lang !== "ts" && lang !== "typescript") continue;
    const flags = info.split(/\s+/).filter((f) => f !== "");
    for (const f of flags) {
      if (!FLAGS.has(f)) throw new Error(`README.md:${start}: unknown flag "${f}" on a \`\`\`ts block (known: ${[...FLAGS].join(", ")})`);
    }
    const code = body.join("\n");
    if (flags.includes("continues")) {
      const prev = out.at(-1);
      if (prev === undefined) throw new Error(`README.md:${start}: a \`\`\`ts continues block has no \`\`\`ts block before it`);
      prev.code += `\n\n${code}`;
      continue;
    }
    out.push({ line: start, heading, code, run: !flags.includes("no-run") });
  }
  return out.map((s, n) => ({ ...s, file: `${String(n + 1).padStart(2, "0")}-${slug(s.heading)}.ts` }));
}

/** The identifiers `code` uses, and those it declares or imports (anywhere in it). */
export function identifiersOf(code: string): { used: Set<string>; declared: Set<string> } {
  const sf = ts.createSourceFile("snippet.ts", code, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const used = new Set<string>();
  const declared = new Set<string>();
  const bind = (name: ts.BindingName): void => {
    if (ts.isIdentifier(name)) declared.add(name.text);
    else for (const el of name.elements) if (!ts.isOmittedExpression(el)) bind(el.name);
  };
  const visit = (node: ts.Node): void => {
    if (ts.isIdentifier(node)) used.add(node.text);
    if (ts.isVariableDeclaration(node) || ts.isParameter(node)) bind(node.name);
    else if ((ts.isFunctionDeclaration(node) || ts.isClassDeclaration(node)) && node.name !== undefined) declared.add(node.name.text);
    else if (ts.isImportClause(node) && node.name !== undefined) declared.add(node.name.text);
    else if (ts.isImportSpecifier(node) || ts.isNamespaceImport(node)) declared.add(node.name.text);
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return { used, declared };
}

/**
 * The file that runs `snippet`: imports of the public names (`values`, `types`) and `prelude` names it uses and
 * does not declare, then its code verbatim.
 */
export function snippetFile(
  snippet: ReadmeSnippet,
  publicNames: { values: string[]; types: string[] },
  prelude: string[],
  paths: { sdk: string; prelude: string },
): string {
  const { used, declared } = identifiersOf(snippet.code);
  const wanted = (n: string): boolean => used.has(n) && !declared.has(n);
  const preludeNames = prelude.filter(wanted);
  const preludeSet = new Set(preludeNames);
  const values = publicNames.values.filter((n) => wanted(n) && !preludeSet.has(n));
  const types = publicNames.types.filter((n) => wanted(n) && !preludeSet.has(n)).map((n) => `type ${n}`);
  const imports =
    (values.length + types.length > 0 ? `import { ${[...values, ...types].join(", ")} } from "${paths.sdk}";\n` : "") +
    (preludeNames.length > 0 ? `import { ${preludeNames.join(", ")} } from "${paths.prelude}";\n` : "");
  return (
    `// Generated by scripts/examples.ts from README.md line ${snippet.line} (${JSON.stringify(snippet.heading)}): do not edit.\n` +
    "// Regenerate with `npm run examples`. tsc type-checks it; test/readme-snippets.test.ts runs it against a local server.\n" +
    imports +
    `\n${snippet.code}\n\nexport {};\n`
  );
}
