/**
 * Child process for test/auth-jwt.test.ts: a user's script in JWT mode. It builds a ServiceClient from
 * TINKER_BASE_URL / TINKER_API_KEY, makes one call, prints `called`, optionally keeps working locally for
 * argv[2] ms (a plain timer), and ends WITHOUT closing the client: the process must then exit by itself.
 *
 * @example
 * ```sh
 * TINKER_BASE_URL=http://127.0.0.1:8080 TINKER_API_KEY=tml-... node --import tsx test/helpers/jwt-exit-child.ts 2000
 * ```
 */
import { ServiceClient } from "../../src/index.js";

const workMs = Number(process.argv[2] ?? "0");
const service = new ServiceClient({ logger: { warn: (m) => process.stderr.write(`${m}\n`) } });
const runs = await service.createRestClient().listTrainingRuns();
process.stdout.write(`called ${runs.training_runs.length}\n`);
if (workMs > 0) await new Promise((resolve) => setTimeout(resolve, workMs));
process.stdout.write("done\n");
