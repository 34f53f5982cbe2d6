/**
 * Reads the wire surface of the official Python SDK from its sources (no Python needed): the pydantic models and
 * aliases under `types/`, the endpoints every module calls, the future result types and the protobuf descriptor.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";
import type { Alias, Endpoint, Field, Model, SdkSurface, WireType } from "./model.js";
import { evalDefault, parseAnnotation, toWireType } from "./pytypes.js";
import { decodeFileDescriptor, extractSerializedDescriptor } from "./descriptor.js";

/** Finds the `tinker` package in a repository root (`src/tinker`), its `src/`, or the package folder itself. */
export function resolveSdkPackage(dir: string): string {
  for (const candidate of [join(dir, "src", "tinker"), join(dir, "tinker"), dir]) {
    if (existsSync(join(candidate, "types")) && existsSync(join(candidate, "resources"))) return candidate;
  }
  throw new Error(
    `${dir} is not a checkout of the Tinker Python SDK: expected src/tinker/types and src/tinker/resources ` +
      "(a repository root) or types/ and resources/ (the package folder). Fetch one with " +
      "`git clone https://github.com/thinking-machines-lab/tinker` and pass its path.",
  );
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir).sort()) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) {
      if (entry === "tests" || entry === "__pycache__" || entry.startsWith(".")) continue;
      out.push(...walk(path));
    } else if (entry.endsWith(".py") && !entry.endsWith("_test.py") && !entry.startsWith("test_")) out.push(path);
  }
  return out;
}

/** Logical lines: continuation lines of an open bracket are joined; triple-quoted strings are blanked. */
function logicalLines(source: string): { text: string; line: number; indent: number }[] {
  const raw = source.split("\n");
  const out: { text: string; line: number; indent: number }[] = [];
  let inDoc: string | null = null;
  let buffer = "";
  let start = 0;
  let depth = 0;
  for (let n = 0; n < raw.length; n++) {
    let line = raw[n]!;
    if (inDoc) {
      const end = line.indexOf(inDoc);
      if (end < 0) continue;
      line = " ".repeat(end + 3) + line.slice(end + 3);
      inDoc = null;
    }
    // Blank out triple-quoted strings that start on this line.
    for (;;) {
      const m = /("""|''')/.exec(line);
      if (!m) break;
      const close = line.indexOf(m[1]!, m.index + 3);
      if (close < 0) {
        inDoc = m[1]!;
        line = line.slice(0, m.index);
        break;
      }
      line = line.slice(0, m.index) + '""' + line.slice(close + 3);
    }
    const code = stripComment(line);
    if (depth === 0) {
      buffer = code;
      start = n;
    } else buffer += ` ${code.trim()}`;
    for (const ch of code.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, "")) {
      if (ch === "(" || ch === "[" || ch === "{") depth++;
      else if (ch === ")" || ch === "]" || ch === "}") depth = Math.max(0, depth - 1);
    }
    if (depth === 0 && buffer.trim() !== "") {
      out.push({ text: buffer.trimEnd(), line: start + 1, indent: /^ */.exec(buffer)![0].length });
    }
  }
  return out;
}

/** The line without its `# comment` (a `#` inside a string literal stays). */
function stripComment(line: string): string {
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quote) {
      if (ch === "\\") i++;
      else if (ch === quote) quote = null;
    } else if (ch === '"' || ch === "'") quote = ch;
    else if (ch === "#") return line.slice(0, i);
  }
  return line;
}

const MODEL_BASES = /\b(BaseModel|StrictBase|BaseParams|TypedDict|GenericModel)\b/;
const ENUM_BASES = /\b(StrEnum|Enum)\b/;

/** Splits `x: T = default` into its parts, or undefined when the line is not a field. */
function splitField(text: string): { name: string; annotation: string; defaultExpr?: string } | undefined {
  const m = /^\s*([A-Za-z_]\w*)\s*:\s*(.+)$/.exec(text);
  if (!m) return undefined;
  const rest = m[2]!;
  let depth = 0;
  let quote: string | null = null;
  for (let i = 0; i < rest.length; i++) {
    const ch = rest[i]!;
    if (quote) {
      if (ch === "\\") i++;
      else if (ch === quote) quote = null;
    } else if (ch === '"' || ch === "'") quote = ch;
    else if ("([{".includes(ch)) depth++;
    else if (")]}".includes(ch)) depth--;
    else if (ch === "=" && depth === 0 && rest[i + 1] !== "=") {
      return { name: m[1]!, annotation: rest.slice(0, i).trim(), defaultExpr: rest.slice(i + 1).trim() };
    }
  }
  return { name: m[1]!, annotation: rest.trim() };
}

/** `Field(default=5)`, `field(default_factory=dict)` and plain defaults. */
function interpretDefault(expr: string | undefined): { required: boolean; defaultValue?: string } {
  if (expr === undefined) return { required: true };
  const call = /^(?:pydantic\.)?(Field|field)\((.*)\)$/s.exec(expr);
  if (call) {
    const args = call[2]!.trim();
    if (args === "" || args.startsWith("...")) return { required: true };
    const d = /\bdefault\s*=\s*([^,]+)/.exec(args);
    if (d) return withDefault(d[1]!);
    if (/\bdefault_factory\s*=/.test(args)) return { required: false };
    const positional = /^([^=,]+)(,|$)/.exec(args);
    if (positional) return withDefault(positional[1]!);
    return { required: true };
  }
  return withDefault(expr);
}

function withDefault(expr: string): { required: boolean; defaultValue?: string } {
  const value = evalDefault(expr);
  return value === undefined ? { required: false } : { required: false, defaultValue: value };
}

interface RawModel {
  name: string;
  file: string;
  line: number;
  fields: { name: string; annotation: string; defaultExpr?: string }[];
  preferred: boolean;
}

/** Reads models and aliases from every file under `types/`. */
function readTypes(pkg: string): { models: Map<string, Model>; aliases: Map<string, Alias> } {
  const rawModels = new Map<string, RawModel>();
  const aliases = new Map<string, Alias>();
  const typesDir = join(pkg, "types");
  for (const file of walk(typesDir)) {
    const rel = relative(pkg, file).split(sep).join("/");
    const preferred = rel.includes("/_pydantic_types/");
    const lines = logicalLines(readFileSync(file, "utf8"));
    for (let k = 0; k < lines.length; k++) {
      const { text, line, indent } = lines[k]!;
      if (indent !== 0) continue;
      const cls = /^class\s+(\w+)\s*(?:\((.*)\))?\s*:/.exec(text);
      if (cls) {
        const name = cls[1]!;
        const bases = cls[2] ?? "";
        const decorated = k > 0 && /^@(dataclasses\.)?dataclass\b/.test(lines[k - 1]!.text);
        const body: typeof lines = [];
        for (let j = k + 1; j < lines.length && lines[j]!.indent > 0; j++) body.push(lines[j]!);
        const bodyIndent = body[0]?.indent ?? 4;
        if (ENUM_BASES.test(bases)) {
          const values: string[] = [];
          for (const b of body) {
            if (b.indent !== bodyIndent) continue;
            const m = /^\s*(\w+)\s*=\s*(.+)$/.exec(b.text);
            if (!m) continue;
            const v = m[2]!.trim();
            values.push(/^auto\(\)$/.test(v) ? m[1]!.toLowerCase() : JSON.parse(evalDefault(v) ?? '""'));
          }
          aliases.set(name, { name, type: { kind: "enum", values, name }, source: `${rel}:${line}` });
          continue;
        }
        if (!MODEL_BASES.test(bases) && !decorated) continue;
        const fields: RawModel["fields"] = [];
        for (const b of body) {
          if (b.indent !== bodyIndent || /^\s*(def|async|class|@|if|else|return)\b/.test(b.text)) continue;
          const f = splitField(b.text);
          if (!f || f.name.startsWith("_") || f.name === "model_config") continue;
          if (/^ClassVar\b/.test(f.annotation)) continue;
          fields.push(f);
        }
        const existing = rawModels.get(name);
        if (!existing || (preferred && !existing.preferred)) rawModels.set(name, { name, file: rel, line, fields, preferred });
        continue;
      }
      const alias = /^([A-Z]\w*)\s*(?::\s*(?:typing\.|typing_extensions\.)?TypeAlias\s*)?=\s*(.+)$/.exec(text);
      if (alias && (/TypeAlias/.test(text) || /^(Literal|Union|Annotated|Optional)\[/.test(alias[2]!))) {
        try {
          aliases.set(alias[1]!, {
            name: alias[1]!,
            type: nameEnum(toWireType(parseAnnotation(alias[2]!)), alias[1]!),
            source: `${rel}:${line}`,
          });
        } catch {
          // Not a type alias (e.g. a constant); ignore it.
        }
      }
    }
  }
  const models = new Map<string, Model>();
  for (const raw of rawModels.values()) {
    const fields: Field[] = raw.fields.map((f) => {
      let type: WireType;
      try {
        type = toWireType(parseAnnotation(f.annotation));
      } catch {
        type = { kind: "any" };
      }
      const { required, defaultValue } = interpretDefault(f.defaultExpr);
      // `Field(alias="wireName")`: the wire uses the alias.
      const alias =
        f.defaultExpr && /^(?:pydantic\.)?Field\(/.test(f.defaultExpr) ? /\balias\s*=\s*["']([^"']+)["']/.exec(f.defaultExpr) : null;
      const field: Field = { name: alias ? alias[1]! : f.name, type, required, nullable: false };
      if (defaultValue !== undefined) field.defaultValue = defaultValue;
      return field;
    });
    models.set(raw.name, { name: raw.name, fields, source: `${raw.file}:${raw.line}` });
  }
  return { models, aliases };
}

function nameEnum(type: WireType, name: string): WireType {
  return type.kind === "enum" ? { ...type, name } : type;
}

/** The text of the balanced (...) that starts at `open`. */
function balanced(text: string, open: number): string {
  let depth = 0;
  let quote: string | null = null;
  for (let i = open; i < text.length; i++) {
    const ch = text[i]!;
    if (quote) {
      if (ch === "\\") i++;
      else if (ch === quote) quote = null;
    } else if (ch === '"' || ch === "'") quote = ch;
    else if ("([{".includes(ch)) depth++;
    else if (")]}".includes(ch)) {
      depth--;
      if (depth === 0) return text.slice(open + 1, i);
    }
  }
  return text.slice(open + 1);
}

/** The value of keyword argument `name=` at the top level of an argument list. */
function kwarg(args: string, name: string): string | undefined {
  const re = new RegExp(`(?:^|[,(\\s])${name}\\s*=\\s*`, "g");
  for (let m = re.exec(args); m !== null; m = re.exec(args)) {
    // Only top-level occurrences.
    const before = args.slice(0, m.index + 1);
    let depth = 0;
    for (const ch of before.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, "")) {
      if ("([{".includes(ch)) depth++;
      else if (")]}".includes(ch)) depth--;
    }
    if (depth !== 0) continue;
    const start = m.index + m[0].length;
    let depth2 = 0;
    let quote: string | null = null;
    for (let i = start; i < args.length; i++) {
      const ch = args[i]!;
      if (quote) {
        if (ch === "\\") i++;
        else if (ch === quote) quote = null;
      } else if (ch === '"' || ch === "'") quote = ch;
      else if ("([{".includes(ch)) depth2++;
      else if (")]}".includes(ch)) depth2--;
      else if (ch === "," && depth2 === 0) return args.slice(start, i).trim();
    }
    return args.slice(start).trim();
  }
  return undefined;
}

/** Top-level keys of a dict literal `{"a": x, "b": y}`. */
function dictKeys(literal: string): string[] {
  const inner = literal.trim().replace(/^\{/, "").replace(/\}$/, "");
  const keys: string[] = [];
  let depth = 0;
  let atItemStart = true;
  for (let i = 0; i < inner.length; i++) {
    const ch = inner[i]!;
    if (atItemStart && depth === 0) {
      const m = /^\s*["'](\w+)["']\s*:/.exec(inner.slice(i));
      if (m) keys.push(m[1]!);
      atItemStart = false;
    }
    if ("([{".includes(ch)) depth++;
    else if (")]}".includes(ch)) depth--;
    else if (ch === "," && depth === 0) atItemStart = true;
  }
  return keys;
}

/** The class a variable is bound to in `scope` (`v: X`, `v = X(...)`, `v = types.X(...)`), nearest first. */
function typeOfVariable(scope: string, variable: string): string | undefined {
  const re = new RegExp(`\\b${variable}\\s*(?::\\s*(?:types\\.)?([A-Z]\\w*)|=\\s*(?:types\\.)?([A-Z]\\w*)(?:\\.\\w+)?\\()`, "g");
  let found: string | undefined;
  for (let m = re.exec(scope); m !== null; m = re.exec(scope)) found = m[1] ?? m[2];
  return found;
}

const CALL = /\.(?:_)?(get|post|put|patch|delete)\(\s*f?(["'])(\/api\/[^"']*)\2/g;

/** Finds every HTTP call of the SDK with a literal `/api/...` path. */
function readEndpoints(pkg: string, models: Map<string, Model>): Endpoint[] {
  const endpoints: Endpoint[] = [];
  for (const file of walk(pkg)) {
    const rel = relative(pkg, file).split(sep).join("/");
    // Docstrings blanked (newlines kept) so that prose never reads as code.
    const source = readFileSync(file, "utf8").replace(/("""|''')[\s\S]*?\1/g, (doc) => doc.replace(/[^\n]/g, " "));
    CALL.lastIndex = 0;
    for (let m = CALL.exec(source); m !== null; m = CALL.exec(source)) {
      const method = m[1]!.toUpperCase();
      const path = m[3]!;
      const open = source.indexOf("(", m.index);
      const args = balanced(source, open);
      const line = source.slice(0, m.index).split("\n").length;
      // The enclosing method or module function: from the last `def` at indent 0 or 4.
      const before = source.slice(0, m.index);
      const defs = [...before.matchAll(/^(?: {4})?(?:async\s+)?def\s/gm)];
      const scope = before.slice(defs.length ? defs[defs.length - 1]!.index : 0);
      const endpoint: Endpoint = { method, path, body: "none", query: [], source: `${rel}:${line}` };
      const body = kwarg(args, "body");
      if (body !== undefined) {
        endpoint.body = "json";
        if (body.startsWith("{")) endpoint.requestKeys = dictKeys(body);
        else {
          const dumped = /^(?:model_dump\(\s*(\w+)|(\w+)\.model_dump\()/.exec(body);
          const variable = dumped ? (dumped[1] ?? dumped[2])! : /^\w+$/.test(body) ? body : undefined;
          if (variable) {
            if (!dumped && /SerializeToString\(/.test(scope)) {
              endpoint.body = "protobuf";
              const requestType = typeOfVariable(scope, "request");
              if (requestType) endpoint.requestType = requestType;
            } else {
              const t = typeOfVariable(scope, variable);
              if (t) endpoint.requestType = t;
            }
          }
        }
      }
      const cast = kwarg(args, "cast_to");
      if (cast !== undefined) {
        const c = /^(?:cast\(\s*\w+\s*,\s*)?(?:types\.)?(\w+)/.exec(cast.replace(/\s+/g, " "))?.[1];
        if (c === "NoneType" || c === "None") endpoint.responseType = "none";
        else if (c && c !== "object" && c !== "Any") endpoint.responseType = c;
        else {
          // `cast_to=object` and then `parse_obj(X, response)`: the model is X.
          const parsed = /parse_obj\(\s*(?:types\.)?([A-Z]\w*)/.exec(source.slice(m.index, m.index + 600));
          if (parsed) endpoint.responseType = parsed[1]!;
        }
      }
      const options = kwarg(args, "options");
      if (options?.startsWith("{")) {
        const params = /["']params["']\s*:\s*/.exec(options);
        if (params) {
          const value = options.slice(params.index + params[0].length);
          if (value.startsWith("{")) endpoint.query = dictKeys(`{${balanced(value, 0)}}`);
          else {
            const variable = /^(\w+)/.exec(value)?.[1];
            if (variable && /^\w+\.model_dump\(/.test(value)) {
              const t = typeOfVariable(scope, variable);
              endpoint.query = t ? (models.get(t)?.fields.map((f) => f.name) ?? []) : [];
            } else if (variable) {
              const keys = new Set<string>();
              const decl = new RegExp(`\\b${variable}\\s*(?::[^=\\n]*)?=\\s*\\{`, "g");
              for (let d = decl.exec(scope); d !== null; d = decl.exec(scope))
                for (const k of dictKeys(`{${balanced(scope, d.index + d[0].length - 1)}}`)) keys.add(k);
              for (const s of scope.matchAll(new RegExp(`\\b${variable}\\[["'](\\w+)["']\\]\\s*=`, "g"))) keys.add(s[1]!);
              endpoint.query = [...keys];
            }
          }
        }
      }
      endpoints.push(endpoint);
    }
  }
  return endpoints;
}

/** Reads the whole surface of the SDK at `dir`. */
export function readSdk(dir: string): SdkSurface {
  const pkg = resolveSdkPackage(dir);
  const { models, aliases } = readTypes(pkg);
  const endpoints = readEndpoints(pkg, models);
  const futureResults = new Set<string>();
  for (const file of walk(pkg)) {
    for (const m of readFileSync(file, "utf8").matchAll(/_APIFuture\(\s*(?:types\.)?([A-Z]\w*)\s*,/g)) futureResults.add(m[1]!);
  }
  const surface: SdkSurface = { models, aliases, endpoints, futureResults: [...futureResults].sort() };
  for (const file of [join(pkg, "_version.py"), join(pkg, "..", "..", "pyproject.toml")]) {
    if (!existsSync(file)) continue;
    const v = /^(?:__version__|version)\s*=\s*["'](\d[^"']*)["']/m.exec(readFileSync(file, "utf8"));
    if (v) surface.version = v[1]!;
  }
  const protoDir = join(pkg, "proto");
  if (existsSync(protoDir)) {
    const pb2 = readdirSync(protoDir)
      .filter((f) => f.endsWith("_pb2.py"))
      .sort();
    if (pb2.length > 0) surface.proto = decodeFileDescriptor(extractSerializedDescriptor(readFileSync(join(protoDir, pb2[0]!), "utf8")));
  }
  return surface;
}
