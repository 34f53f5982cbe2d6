/**
 * A small JSON-Schema validator for the subset of JSON Schema 2020-12 that `spec/tinker.openapi.yaml`
 * uses: `type` (including type arrays with `"null"`), `required`, `properties`, `additionalProperties`
 * (boolean or schema), `items`, `enum`, `const`, `anyOf`, `oneOf`, `allOf`, `minimum`, `maximum`,
 * `exclusiveMinimum`, `exclusiveMaximum`, `minLength`, `maxLength`, `pattern`, `minItems`, `maxItems` and `$ref` to
 * `#/components/...`. Annotations (`description`, `default`, `format`, `x-*`, ...) are ignored.
 *
 * Errors name the field path the way the local server reports it, e.g.
 * `body.adam_params.learning_rate: expected number, got string`.
 *
 * @module
 */

/** A JSON Schema object (as found in the OpenAPI document). */
export type JsonSchema = { readonly [keyword: string]: unknown };

/** The first problem found in a value. */
export type SchemaIssue = {
  /** Where the problem is, e.g. `body.forward_backward_input.data[2].loss_fn_inputs`. */
  field: string;
  /** What is wrong, e.g. `expected integer, got string`. */
  message: string;
};

function typeOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

function matchesType(value: unknown, type: string): boolean {
  switch (type) {
    case "null":
      return value === null;
    case "boolean":
      return typeof value === "boolean";
    case "string":
      return typeof value === "string";
    case "number":
      return typeof value === "number" && Number.isFinite(value);
    case "integer":
      return typeof value === "number" && Number.isInteger(value);
    case "array":
      return Array.isArray(value);
    case "object":
      return typeof value === "object" && value !== null && !Array.isArray(value);
    default:
      return false;
  }
}

/** A fast check for item schemas that are a bare primitive type (with an optional minimum), else undefined. */
function primitiveCheck(schema: JsonSchema): ((v: unknown) => boolean) | undefined {
  for (const key of Object.keys(schema)) if (key !== "type" && key !== "minimum" && key !== "description") return undefined;
  const min = typeof schema.minimum === "number" ? schema.minimum : -Infinity;
  switch (schema.type) {
    case "integer":
      return (v) => typeof v === "number" && Number.isInteger(v) && v >= min;
    case "number":
      return (v) => typeof v === "number" && Number.isFinite(v) && v >= min;
    case "string":
      return schema.minimum === undefined ? (v) => typeof v === "string" : undefined;
    default:
      return undefined;
  }
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

const patterns = new Map<string, RegExp>();

/** A schema's `pattern` (ECMA-262, unanchored as JSON Schema says), compiled once. */
function compiledPattern(pattern: string): RegExp {
  let re = patterns.get(pattern);
  if (re === undefined) {
    re = new RegExp(pattern, "u");
    patterns.set(pattern, re);
  }
  return re;
}

function show(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
}

/** Joins a parent field path and a property name (`body` + `seq_id` → `body.seq_id`). */
function join(path: string, key: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

/** Validates values against schemas of one OpenAPI/JSON-Schema document, resolving local `$ref`s. */
export class SchemaValidator {
  readonly #doc: unknown;

  /** Creates a validator whose `$ref`s (`#/...`) resolve inside `doc`. */
  constructor(doc: unknown) {
    this.#doc = doc;
  }

  readonly #resolved = new Map<string, JsonSchema>();

  /** Resolves a local JSON pointer such as `#/components/schemas/Datum` (cached). */
  resolve(ref: string): JsonSchema {
    const cached = this.#resolved.get(ref);
    if (cached !== undefined) return cached;
    const schema = this.#resolveUncached(ref);
    this.#resolved.set(ref, schema);
    return schema;
  }

  #resolveUncached(ref: string): JsonSchema {
    if (!ref.startsWith("#/")) throw new Error(`unsupported $ref ${ref}`);
    let cur: unknown = this.#doc;
    for (const raw of ref.slice(2).split("/")) {
      const key = raw.replace(/~1/g, "/").replace(/~0/g, "~");
      if (typeof cur !== "object" || cur === null || !(key in cur)) throw new Error(`unresolvable $ref ${ref}`);
      cur = (cur as Record<string, unknown>)[key];
    }
    return cur as JsonSchema;
  }

  /** Follows `$ref` chains until a schema without `$ref`. */
  deref(schema: JsonSchema): JsonSchema {
    let cur = schema;
    for (let i = 0; i < 32 && typeof cur.$ref === "string"; i++) cur = this.resolve(cur.$ref);
    return cur;
  }

  /** Returns the first problem of `value` against `schema` (reported under `path`), or undefined if valid. */
  validate(schema: JsonSchema, value: unknown, path: string): SchemaIssue | undefined {
    const s = this.deref(schema);

    if (s.type !== undefined) {
      const types = Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
      if (!types.some((t) => matchesType(value, t))) {
        return { field: path, message: `expected ${types.join(" or ")}, got ${typeOf(value)}` };
      }
    }
    if (s.const !== undefined && !deepEqual(value, s.const)) {
      return { field: path, message: `must be ${show(s.const)}, got ${show(value)}` };
    }
    if (Array.isArray(s.enum) && !s.enum.some((e) => deepEqual(e, value))) {
      return { field: path, message: `must be one of ${s.enum.map(show).join(", ")}, got ${show(value)}` };
    }
    if (typeof value === "number") {
      if (typeof s.minimum === "number" && value < s.minimum) return { field: path, message: `must be >= ${s.minimum}, got ${value}` };
      if (typeof s.maximum === "number" && value > s.maximum) return { field: path, message: `must be <= ${s.maximum}, got ${value}` };
      if (typeof s.exclusiveMinimum === "number" && value <= s.exclusiveMinimum) {
        return { field: path, message: `must be > ${s.exclusiveMinimum}, got ${value}` };
      }
      if (typeof s.exclusiveMaximum === "number" && value >= s.exclusiveMaximum) {
        return { field: path, message: `must be < ${s.exclusiveMaximum}, got ${value}` };
      }
    }
    if (typeof value === "string") {
      const len = [...value].length;
      if (typeof s.minLength === "number" && len < s.minLength)
        return { field: path, message: `must have at least ${s.minLength} characters` };
      if (typeof s.maxLength === "number" && len > s.maxLength)
        return { field: path, message: `must have at most ${s.maxLength} characters` };
      if (typeof s.pattern === "string" && !compiledPattern(s.pattern).test(value)) {
        return { field: path, message: `must match ${s.pattern}, got ${show(value.length > 60 ? `${value.slice(0, 60)}…` : value)}` };
      }
    }
    if (Array.isArray(value)) {
      if (typeof s.minItems === "number" && value.length < s.minItems)
        return { field: path, message: `must have at least ${s.minItems} items` };
      if (typeof s.maxItems === "number" && value.length > s.maxItems)
        return { field: path, message: `must have at most ${s.maxItems} items` };
      if (typeof s.items === "object" && s.items !== null) {
        const items = this.deref(s.items as JsonSchema);
        const quick = primitiveCheck(items);
        for (let i = 0; i < value.length; i++) {
          // Hot path (token arrays): a tight check per item; the item's path is built only to report a problem.
          const ok = quick !== undefined ? quick(value[i]) : this.validate(items, value[i], "") === undefined;
          if (!ok) return this.validate(items, value[i], `${path}[${i}]`);
        }
      }
    }
    if (matchesType(value, "object")) {
      const obj = value as Record<string, unknown>;
      if (Array.isArray(s.required)) {
        for (const key of s.required as string[]) {
          if (!(key in obj) || obj[key] === undefined) return { field: join(path, key), message: "is required" };
        }
      }
      const props = (s.properties ?? {}) as Record<string, JsonSchema>;
      for (const [key, v] of Object.entries(obj)) {
        const child = join(path, key);
        const propSchema = Object.hasOwn(props, key) ? props[key] : undefined;
        if (propSchema !== undefined) {
          const issue = this.validate(propSchema, v, child);
          if (issue) return issue;
        } else if (s.additionalProperties === false) {
          return { field: child, message: "is not an allowed property" };
        } else if (typeof s.additionalProperties === "object" && s.additionalProperties !== null) {
          const issue = this.validate(s.additionalProperties as JsonSchema, v, child);
          if (issue) return issue;
        }
      }
    }
    if (Array.isArray(s.allOf)) {
      for (const sub of s.allOf as JsonSchema[]) {
        const issue = this.validate(sub, value, path);
        if (issue) return issue;
      }
    }
    if (Array.isArray(s.anyOf)) {
      const issue = this.#alternatives(s.anyOf as JsonSchema[], value, path, false);
      if (issue) return issue;
    }
    if (Array.isArray(s.oneOf)) {
      const issue = this.#alternatives(s.oneOf as JsonSchema[], value, path, true);
      if (issue) return issue;
    }
    return undefined;
  }

  /** anyOf / oneOf: report the most relevant branch's problem when none matches. */
  #alternatives(branches: JsonSchema[], value: unknown, path: string, exactlyOne: boolean): SchemaIssue | undefined {
    const issues: Array<{ issue: SchemaIssue; typeOk: boolean }> = [];
    let matches = 0;
    for (const branch of branches) {
      const issue = this.validate(branch, value, path);
      if (!issue) {
        matches++;
        continue;
      }
      const b = this.deref(branch);
      const types = b.type === undefined ? undefined : Array.isArray(b.type) ? (b.type as string[]) : [b.type as string];
      issues.push({ issue, typeOk: types === undefined || types.some((t) => matchesType(value, t)) });
    }
    if (matches > 0) {
      return exactlyOne && matches > 1 ? { field: path, message: "matches more than one allowed shape" } : undefined;
    }
    const relevant = issues.filter((i) => i.typeOk);
    if (relevant.length === 0) {
      const types = new Set<string>();
      for (const branch of branches) {
        const b = this.deref(branch);
        if (b.type !== undefined) for (const t of Array.isArray(b.type) ? (b.type as string[]) : [b.type as string]) types.add(t);
      }
      return { field: path, message: `expected ${[...types].join(" or ")}, got ${typeOf(value)}` };
    }
    if (relevant.length === 1) return relevant[0]!.issue;
    // Prefer the branch that got deepest into the value.
    relevant.sort((a, b) => b.issue.field.length - a.issue.field.length);
    const best = relevant[0]!;
    return best.issue.field === path ? { field: path, message: "does not match any allowed shape" } : best.issue;
  }
}

/**
 * Converts a query-string value to the JSON type its schema asks for (`integer`, `number`, `boolean`);
 * returns the string unchanged when it does not look like that type, so validation reports it.
 */
export function coerceQueryValue(validator: SchemaValidator, schema: JsonSchema, raw: string): unknown {
  const s = validator.deref(schema);
  const types = s.type === undefined ? [] : Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
  if ((types.includes("integer") || types.includes("number")) && /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(raw)) return Number(raw);
  if (types.includes("boolean") && (raw === "true" || raw === "false")) return raw === "true";
  return raw;
}
