/**
 * Validates `spec/tinker.openapi.yaml` against the OpenAPI 3.1 schema with @apidevtools/swagger-parser,
 * and checks the project's own rules: every operation has an operationId and a description.
 */
import SwaggerParser from "@apidevtools/swagger-parser";
import { fileURLToPath } from "node:url";

const specPath = fileURLToPath(new URL("../spec/tinker.openapi.yaml", import.meta.url));
const methods = ["get", "put", "post", "delete", "patch", "head", "options"] as const;

async function main(): Promise<void> {
  const api = (await SwaggerParser.validate(specPath)) as { paths?: Record<string, Record<string, unknown>> };
  const problems: string[] = [];
  const ids = new Set<string>();
  let count = 0;
  for (const [path, item] of Object.entries(api.paths ?? {})) {
    for (const method of methods) {
      const op = item[method] as { operationId?: string; description?: string } | undefined;
      if (!op) continue;
      count++;
      if (!op.operationId) problems.push(`${method.toUpperCase()} ${path}: no operationId`);
      else if (ids.has(op.operationId)) problems.push(`${method.toUpperCase()} ${path}: duplicate operationId ${op.operationId}`);
      else ids.add(op.operationId);
      if (!op.description) problems.push(`${method.toUpperCase()} ${path}: no description`);
    }
  }
  if (problems.length > 0) {
    console.error(problems.join("\n"));
    process.exit(1);
  }
  console.log(`spec/tinker.openapi.yaml is valid OpenAPI 3.1 (${count} operations).`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
