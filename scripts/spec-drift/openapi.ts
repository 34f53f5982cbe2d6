/**
 * Reads spec/tinker.openapi.yaml (and spec/tinker_public.proto when present) into the comparison model.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import type { Alias, Endpoint, Field, Model, SpecSurface, WireType } from "./model.js";
import { parseProto } from "./proto-text.js";

type Schema = Record<string, unknown>;
const METHODS = ["get", "post", "put", "patch", "delete"];

const refName = (ref: unknown): string | undefined => (typeof ref === "string" ? ref.slice(ref.lastIndexOf("/") + 1) : undefined);

/** Converts an OpenAPI 3.1 schema into a wire type. */
export function schemaToWire(schema: Schema | undefined): WireType {
  if (!schema || typeof schema !== "object") return { kind: "any" };
  if (typeof schema.$ref === "string") return { kind: "ref", name: refName(schema.$ref)! };
  if ("const" in schema) return { kind: "const", value: schema.const as string | number | boolean };
  const variants = (schema.oneOf ?? schema.anyOf) as Schema[] | undefined;
  if (Array.isArray(variants)) return { kind: "union", members: variants.map(schemaToWire) };
  if (Array.isArray(schema.enum)) {
    const values = (schema.enum as unknown[]).filter((v) => v !== null).map(String);
    const base: WireType = { kind: "enum", values };
    return values.length === schema.enum.length ? base : { kind: "union", members: [base, { kind: "null" }] };
  }
  const types = Array.isArray(schema.type) ? (schema.type as string[]) : schema.type ? [schema.type as string] : [];
  if (types.length === 0) return { kind: "any" };
  const members = types.map((t): WireType => {
    switch (t) {
      case "string":
        return schema.format === "date-time" || schema.format === "date"
          ? { kind: "string", format: schema.format as string }
          : { kind: "string" };
      case "integer":
        return { kind: "integer" };
      case "number":
        return { kind: "number" };
      case "boolean":
        return { kind: "boolean" };
      case "null":
        return { kind: "null" };
      case "array":
        return { kind: "array", items: schemaToWire(schema.items as Schema | undefined) };
      default: {
        const extra = schema.additionalProperties;
        if (extra && typeof extra === "object") return { kind: "map", values: schemaToWire(extra as Schema) };
        return { kind: "object" };
      }
    }
  });
  return members.length === 1 ? members[0]! : { kind: "union", members };
}

function readModels(schemas: Record<string, Schema>): { models: Map<string, Model>; aliases: Map<string, Alias> } {
  const models = new Map<string, Model>();
  const aliases = new Map<string, Alias>();
  for (const [name, schema] of Object.entries(schemas)) {
    const source = `components.schemas.${name}`;
    const props = schema.properties as Record<string, Schema> | undefined;
    if (props) {
      const required = new Set((schema.required as string[] | undefined) ?? []);
      const fields: Field[] = Object.entries(props).map(([fname, fschema]) => {
        const field: Field = { name: fname, type: schemaToWire(fschema), required: required.has(fname), nullable: false };
        if (fschema && "default" in fschema) field.defaultValue = JSON.stringify(fschema.default);
        return field;
      });
      models.set(name, { name, fields, source });
    } else {
      const type = schemaToWire(schema);
      aliases.set(name, { name, type: type.kind === "enum" ? { ...type, name } : type, source });
    }
  }
  return { models, aliases };
}

function resolve<T>(doc: Schema, value: T): T {
  const ref = (value as Schema | undefined)?.$ref;
  if (typeof ref !== "string" || !ref.startsWith("#/")) return value;
  let node: unknown = doc;
  for (const part of ref.slice(2).split("/")) node = (node as Schema)[part];
  return resolve(doc, node as T);
}

function readEndpoints(doc: Schema): { endpoints: Endpoint[]; futureResults: string[] } {
  const endpoints: Endpoint[] = [];
  const futureResults = new Set<string>();
  for (const [path, item] of Object.entries((doc.paths ?? {}) as Record<string, Schema>)) {
    for (const method of METHODS) {
      const op = item[method] as Schema | undefined;
      if (!op) continue;
      const endpoint: Endpoint = { method: method.toUpperCase(), path, body: "none", query: [], source: `paths.${path}.${method}` };
      if (typeof op["x-tinker-future-result"] === "string") futureResults.add(op["x-tinker-future-result"]);
      const params = [...((item.parameters as Schema[]) ?? []), ...((op.parameters as Schema[]) ?? [])].map((p) => resolve(doc, p));
      endpoint.query = params.filter((p) => p.in === "query").map((p) => p.name as string);
      const body = resolve(doc, op.requestBody as Schema | undefined);
      const content = body?.content as Record<string, Schema> | undefined;
      if (content) {
        const types = Object.keys(content);
        const formats = [...new Set(types.map((t) => (/protobuf/.test(t) ? ("protobuf" as const) : ("json" as const))))];
        endpoint.body = formats.includes("json") ? "json" : "protobuf";
        endpoint.formats = formats;
        const schema = (content["application/json"] ?? Object.values(content)[0])?.schema as Schema | undefined;
        const name = refName(schema?.$ref) ?? (typeof op["x-proto-message"] === "string" ? op["x-proto-message"] : undefined);
        if (name) endpoint.requestType = name;
        else if (schema?.properties) endpoint.requestKeys = Object.keys(schema.properties as object);
      }
      const responses = (op.responses ?? {}) as Record<string, Schema>;
      const ok = Object.keys(responses)
        .filter((c) => /^2\d\d$/.test(c))
        .sort();
      let responseType: string | undefined;
      let anyContent = false;
      for (const code of ok) {
        const response = resolve(doc, responses[code]);
        const rcontent = response?.content as Record<string, Schema> | undefined;
        if (!rcontent) continue;
        anyContent = true;
        const schema = (rcontent["application/json"] ?? Object.values(rcontent)[0])?.schema as Schema | undefined;
        responseType ??= refName(schema?.$ref);
      }
      if (responseType) endpoint.responseType = responseType;
      else if (!anyContent && ok.length > 0) endpoint.responseType = "none";
      endpoints.push(endpoint);
    }
  }
  return { endpoints, futureResults: [...futureResults].sort() };
}

/** Reads spec/ (the OpenAPI file, and the .proto when it exists). */
export function readSpec(specDir: string): SpecSurface {
  const openapiPath = join(specDir, "tinker.openapi.yaml");
  if (!existsSync(openapiPath)) throw new Error(`${openapiPath} does not exist; pass the spec folder with --spec <dir>`);
  const doc = parse(readFileSync(openapiPath, "utf8")) as Schema;
  const { models, aliases } = readModels(((doc.components as Schema | undefined)?.schemas ?? {}) as Record<string, Schema>);
  const { endpoints, futureResults } = readEndpoints(doc);
  const surface: SpecSurface = { models, aliases, endpoints, futureResults };
  const protoPath = join(specDir, "tinker_public.proto");
  if (existsSync(protoPath)) surface.proto = parseProto(readFileSync(protoPath, "utf8"));
  return surface;
}
