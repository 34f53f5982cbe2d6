#!/usr/bin/env node
// Launcher of the tinker-ts CLI. In a git clone (src/ present) it runs the TypeScript sources through tsx, a
// devDependency, so a stale or half-built dist/ is never used; in the packed package (no src/) it runs the
// compiled build.
import { existsSync } from "node:fs";

const sources = new URL("../src/cli/main.ts", import.meta.url);
let mod;
if (existsSync(sources)) {
  const { register } = await import("tsx/esm/api");
  register();
  mod = await import(sources.href);
} else {
  mod = await import(new URL("../dist/src/cli/main.js", import.meta.url).href);
}
process.exitCode = await mod.main(process.argv.slice(2));
