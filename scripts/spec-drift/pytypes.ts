/**
 * Python type annotations (`Optional[List[int]]`, `int | None`, `Literal["a", "b"]`) parsed into wire types.
 */
import type { WireType } from "./model.js";

type PyNode = { name: string; args: PyNode[] } | { literal: (string | number | boolean | null)[] };

function tokenize(text: string): string[] {
  const tokens: string[] = [];
  const re = /\s*(?:("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|([A-Za-z_][\w.]*)|(-?\d+(?:\.\d+)?)|(\.\.\.)|([[\],|]))/y;
  let m: RegExpExecArray | null;
  let pos = 0;
  while (pos < text.length) {
    re.lastIndex = pos;
    m = re.exec(text);
    if (!m) {
      if (/^\s*$/.test(text.slice(pos))) break;
      throw new Error(`cannot parse the Python annotation ${JSON.stringify(text)} at ${pos}`);
    }
    tokens.push(m[0].trim());
    pos = re.lastIndex;
    // A call inside an annotation (`PropertyInfo(discriminator="type")`) is metadata: skip its arguments.
    if (/^\s*\(/.test(text.slice(pos))) {
      let depth = 0;
      for (; pos < text.length; pos++) {
        if (text[pos] === "(") depth++;
        else if (text[pos] === ")" && --depth === 0) {
          pos++;
          break;
        }
      }
    }
  }
  return tokens;
}

function unquote(token: string): string {
  return token.slice(1, -1).replace(/\\(.)/g, "$1");
}

/** Parses one annotation into a tree; a quoted forward reference is parsed as the annotation it names. */
export function parseAnnotation(text: string): PyNode {
  const tokens = tokenize(text);
  let i = 0;
  const peek = (): string | undefined => tokens[i];
  const next = (): string => {
    const t = tokens[i++];
    if (t === undefined) throw new Error(`unexpected end of the Python annotation ${JSON.stringify(text)}`);
    return t;
  };
  function parseUnion(): PyNode {
    const members = [parseAtom()];
    while (peek() === "|") {
      i++;
      members.push(parseAtom());
    }
    return members.length === 1 ? members[0]! : { name: "Union", args: members };
  }
  function parseAtom(): PyNode {
    const t = next();
    if (t.startsWith('"') || t.startsWith("'")) return parseAnnotation(unquote(t));
    const name = t.replace(/^(typing|typing_extensions|types|datetime)\./, "");
    if (peek() !== "[") return { name, args: [] };
    i++;
    if (name === "Literal") {
      const values: (string | number | boolean | null)[] = [];
      while (peek() !== "]") {
        const v = next();
        if (v === ",") continue;
        if (v.startsWith('"') || v.startsWith("'")) values.push(unquote(v));
        else if (v === "True" || v === "False") values.push(v === "True");
        else if (v === "None") values.push(null);
        else values.push(Number(v));
      }
      i++;
      return { literal: values };
    }
    const args: PyNode[] = [];
    while (peek() !== "]") {
      if (peek() === ",") {
        i++;
        continue;
      }
      if (peek() === "...") {
        i++;
        continue;
      }
      args.push(parseUnion());
    }
    i++;
    return { name, args };
  }
  const node = parseUnion();
  if (i !== tokens.length) throw new Error(`trailing text in the Python annotation ${JSON.stringify(text)}`);
  return node;
}

const SCALARS: Record<string, WireType> = {
  str: { kind: "string" },
  int: { kind: "integer" },
  float: { kind: "number" },
  bool: { kind: "boolean" },
  bytes: { kind: "bytes" },
  datetime: { kind: "string", format: "date-time" },
  date: { kind: "string", format: "date" },
  Any: { kind: "any" },
  object: { kind: "any" },
  None: { kind: "null" },
  NoneType: { kind: "null" },
};
const LISTS = new Set(["List", "list", "Sequence", "Iterable", "Tuple", "tuple", "Set", "set"]);
const MAPS = new Set(["Dict", "dict", "Mapping"]);

/** Converts a parsed annotation into a wire type; names that are not builtins become `ref`s. */
export function toWireType(node: PyNode): WireType {
  if ("literal" in node) {
    const values = node.literal.filter((v) => v !== null);
    const nullable = values.length !== node.literal.length;
    const base: WireType = values.length === 1 ? { kind: "const", value: values[0]! } : { kind: "enum", values: values.map(String) };
    return nullable ? { kind: "union", members: [base, { kind: "null" }] } : base;
  }
  const scalar = SCALARS[node.name];
  if (scalar) return scalar;
  if (node.name === "Optional") return { kind: "union", members: [toWireType(node.args[0]!), { kind: "null" }] };
  if (node.name === "Union") return { kind: "union", members: node.args.map(toWireType) };
  if (node.name === "Annotated" || node.name === "Required" || node.name === "NotRequired" || node.name === "ClassVar")
    return toWireType(node.args[0]!);
  if (LISTS.has(node.name)) return { kind: "array", items: node.args[0] ? toWireType(node.args[0]) : { kind: "any" } };
  if (MAPS.has(node.name)) return { kind: "map", values: node.args[1] ? toWireType(node.args[1]) : { kind: "any" } };
  return { kind: "ref", name: node.name };
}

/** Evaluates a simple Python default (`10 * 1024 * 1024`, `"api_key"`, `True`, `None`) into JSON text. */
export function evalDefault(expr: string): string | undefined {
  const e = expr.trim();
  if (e === "True") return "true";
  if (e === "False") return "false";
  if (e === "None") return "null";
  if (/^("[^"\\]*"|'[^'\\]*')$/.test(e)) return JSON.stringify(e.slice(1, -1));
  if (/^[\d_.eE+\-*/() ]+$/.test(e)) {
    const tokens = e.replace(/_/g, "").match(/\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|[+\-*/()]/g) ?? [];
    let i = 0;
    const expr2 = (): number => {
      let v = term();
      while (tokens[i] === "+" || tokens[i] === "-") v = tokens[i++] === "+" ? v + term() : v - term();
      return v;
    };
    const term = (): number => {
      let v = factor();
      while (tokens[i] === "*" || tokens[i] === "/") v = tokens[i++] === "*" ? v * factor() : v / factor();
      return v;
    };
    const factor = (): number => {
      const t = tokens[i++];
      if (t === "(") {
        const v = expr2();
        i++;
        return v;
      }
      if (t === "-") return -factor();
      return Number(t);
    };
    const v = expr2();
    return Number.isFinite(v) ? JSON.stringify(v) : undefined;
  }
  return undefined;
}
