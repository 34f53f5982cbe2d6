/**
 * The OpenAPI document (`generated/openapi.json`) as the local server uses it: a route table derived
 * from its `paths`, and request validation (body, query and path parameters) per operation.
 *
 * @module
 */

import openapi from "../../generated/openapi.json" with { type: "json" };
import { coerceQueryValue, SchemaValidator, type JsonSchema, type SchemaIssue } from "./validate.js";

/** The parsed OpenAPI document. */
export const openapiDocument: unknown = openapi;

/** A parameter of an operation. */
type Parameter = { name: string; in: "query" | "path" | "header" | "cookie"; required?: boolean; schema?: JsonSchema };

/** One operation of the spec, ready for routing and validation. */
export type SpecOperation = {
  /** The spec's `operationId`, e.g. `saveWeights`. */
  operationId: string;
  /** Upper-case HTTP method. */
  method: string;
  /** The spec path template, e.g. `/api/v1/training_runs/{training_run_id}`. */
  template: string;
  /** Path template split into segments; `{name}` segments are parameters. */
  segments: string[];
  /** Parameters (path and query), `$ref`s resolved. */
  parameters: Parameter[];
  /** The JSON request-body schema, if the operation has a body. */
  bodySchema: JsonSchema | undefined;
  /** Whether the body is required. */
  bodyRequired: boolean;
};

/** A matched route: the operation and its decoded path parameters. */
export type RouteMatch = { operation: SpecOperation; params: Record<string, string> };

/** The validator over the whole OpenAPI document. */
export const specValidator = new SchemaValidator(openapi);

const HTTP_METHODS = ["get", "put", "post", "delete", "patch", "head", "options"];

function buildOperations(): SpecOperation[] {
  const ops: SpecOperation[] = [];
  const paths = openapi.paths as Record<string, Record<string, unknown>>;
  for (const [template, item] of Object.entries(paths)) {
    for (const method of HTTP_METHODS) {
      const raw = item[method] as Record<string, unknown> | undefined;
      if (raw === undefined) continue;
      const parameters = ((raw.parameters ?? []) as JsonSchema[]).map((p) => specValidator.deref(p) as unknown as Parameter);
      let bodySchema: JsonSchema | undefined;
      let bodyRequired = false;
      if (raw.requestBody !== undefined) {
        const rb = specValidator.deref(raw.requestBody as JsonSchema) as {
          required?: boolean;
          content?: Record<string, { schema?: JsonSchema }>;
        };
        bodySchema = rb.content?.["application/json"]?.schema;
        bodyRequired = rb.required === true;
      }
      ops.push({
        operationId: raw.operationId as string,
        method: method.toUpperCase(),
        template,
        segments: template.split("/").filter((s) => s !== ""),
        parameters,
        bodySchema,
        bodyRequired,
      });
    }
  }
  return ops;
}

/** Every operation of the spec. */
export const specOperations: readonly SpecOperation[] = buildOperations();

/**
 * Finds the operation for `segments` (already percent-decoded path segments). Returns `"method"` when
 * the path exists but not for this method, undefined when no path matches.
 */
export function matchRoute(method: string, segments: string[]): RouteMatch | "method" | undefined {
  let pathMatched = false;
  for (const op of specOperations) {
    if (op.segments.length !== segments.length) continue;
    const params: Record<string, string> = {};
    let ok = true;
    for (let i = 0; i < segments.length; i++) {
      const tpl = op.segments[i]!;
      const seg = segments[i]!;
      if (tpl.startsWith("{") && tpl.endsWith("}")) {
        if (seg === "") {
          ok = false;
          break;
        }
        params[tpl.slice(1, -1)] = seg;
      } else if (tpl !== seg) {
        ok = false;
        break;
      }
    }
    if (!ok) continue;
    pathMatched = true;
    if (op.method === method || (method === "HEAD" && op.method === "GET")) return { operation: op, params };
  }
  return pathMatched ? "method" : undefined;
}

/** Allowed methods for a path (for a 405's `Allow` header). */
export function allowedMethods(segments: string[]): string[] {
  const out = new Set<string>();
  for (const op of specOperations) {
    if (op.segments.length !== segments.length) continue;
    if (op.segments.every((t, i) => (t.startsWith("{") ? segments[i] !== "" : t === segments[i]))) out.add(op.method);
  }
  return [...out];
}

/** Validated, typed-by-schema request inputs. */
export type ValidatedInput = { query: Record<string, unknown>; params: Record<string, string>; body: unknown };

/**
 * Validates path parameters, query parameters and the JSON body of a request against its operation.
 * `body` is `undefined` when the request had no body. Returns the first issue, or the coerced values.
 */
export function validateRequest(
  op: SpecOperation,
  params: Record<string, string>,
  query: URLSearchParams,
  body: unknown,
): SchemaIssue | ValidatedInput {
  const outQuery: Record<string, unknown> = {};
  for (const p of op.parameters) {
    if (p.in === "path") {
      const v = params[p.name];
      if (v === undefined) return { field: `path.${p.name}`, message: "is required" };
      if (p.schema) {
        const issue = specValidator.validate(p.schema, v, `path.${p.name}`);
        if (issue) return issue;
      }
    } else if (p.in === "query") {
      const raw = query.get(p.name);
      if (raw === null) {
        if (p.required) return { field: `query.${p.name}`, message: "is required" };
        continue;
      }
      const value = p.schema ? coerceQueryValue(specValidator, p.schema, raw) : raw;
      if (p.schema) {
        const issue = specValidator.validate(p.schema, value, `query.${p.name}`);
        if (issue) return issue;
      }
      outQuery[p.name] = value;
    }
  }
  if (op.bodySchema !== undefined) {
    if (body === undefined) {
      if (op.bodyRequired) return { field: "body", message: "a JSON request body is required" };
    } else {
      const issue = specValidator.validate(op.bodySchema, body, "body");
      if (issue) return issue;
    }
  }
  return { query: outQuery, params, body };
}
