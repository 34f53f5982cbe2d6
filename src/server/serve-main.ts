/**
 * Directly runnable entry of the local server (`npx tsx src/server/serve-main.ts --port 0`); the same
 * as `tinker-ts serve`. Exits 2 on invalid arguments, 1 if the server cannot start.
 *
 * @module
 */

import { runServe, ServeUsageError } from "./serve.js";

runServe(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`tinker-ts serve: ${(err as Error).message}\n`);
  process.exit(err instanceof ServeUsageError ? 2 : 1);
});
