/**
 * A small parser for the `.proto` files in spec/ (proto3: messages, nested messages, enums, oneofs, maps,
 * `optional`/`repeated`; options and `reserved` are skipped).
 */
import type { ProtoField, ProtoFile } from "./model.js";

function tokenize(source: string): string[] {
  const stripped = source.replace(/\/\*[\s\S]*?\*\//g, " ").replace(/\/\/[^\n]*/g, " ");
  return stripped.match(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[A-Za-z_][\w.]*|-?\d+|[{}[\]<>()=;,]/g) ?? [];
}

/** Parses proto3 source into messages and enums (nested ones named `Outer.Inner`). */
export function parseProto(source: string): ProtoFile {
  const tokens = tokenize(source);
  let i = 0;
  const result: ProtoFile = { package: "", messages: [], enums: [] };
  const next = (): string => {
    const t = tokens[i++];
    if (t === undefined) throw new Error("unexpected end of the .proto file");
    return t;
  };
  const expect = (t: string): void => {
    const got = next();
    if (got !== t) throw new Error(`.proto parse error: expected "${t}", got "${got}" (token ${i})`);
  };
  const skipStatement = (): void => {
    let depth = 0;
    for (;;) {
      const t = next();
      if (t === "{" || t === "[" || t === "(") depth++;
      else if (t === "}" || t === "]" || t === ")") depth--;
      else if (t === ";" && depth === 0) return;
      if (t === "}" && depth === 0) return;
    }
  };
  const shortName = (t: string): string => t.slice(t.lastIndexOf(".") + 1);
  const parseEnum = (prefix: string): void => {
    const name = prefix + next();
    expect("{");
    const values: { name: string; number: number }[] = [];
    while (tokens[i] !== "}") {
      const t = next();
      if (t === "option" || t === "reserved") {
        skipStatement();
        continue;
      }
      if (t === ";") continue;
      expect("=");
      values.push({ name: t, number: Number(next()) });
      if (tokens[i] === "[") skipStatement();
      else expect(";");
    }
    i++;
    result.enums.push({ name, values });
  };
  const parseField = (first: string, oneof?: string): ProtoField => {
    let label: ProtoField["label"] = "singular";
    let t = first;
    if (t === "optional" || t === "repeated" || t === "required") {
      label = t === "repeated" ? "repeated" : "optional";
      t = next();
    }
    let type: string;
    let map: ProtoField["map"];
    if (t === "map") {
      expect("<");
      const key = next();
      expect(",");
      const value = shortName(next());
      expect(">");
      map = { key, value };
      type = `map<${key},${value}>`;
    } else type = shortName(t);
    const name = next();
    expect("=");
    const number = Number(next());
    if (tokens[i] === "[") skipStatement();
    else expect(";");
    const field: ProtoField = { name, number, type, label };
    if (map) field.map = map;
    if (oneof) field.oneof = oneof;
    return field;
  };
  const parseMessage = (prefix: string): void => {
    const name = prefix + next();
    expect("{");
    const fields: ProtoField[] = [];
    while (tokens[i] !== "}") {
      const t = next();
      if (t === ";") continue;
      if (t === "message") parseMessage(`${name}.`);
      else if (t === "enum") parseEnum(`${name}.`);
      else if (t === "option" || t === "reserved" || t === "extensions") skipStatement();
      else if (t === "oneof") {
        const oneofName = next();
        expect("{");
        while (tokens[i] !== "}") {
          const f = next();
          if (f === "option") skipStatement();
          else if (f !== ";") fields.push(parseField(f, oneofName));
        }
        i++;
      } else fields.push(parseField(t));
    }
    i++;
    result.messages.push({ name, fields });
  };
  while (i < tokens.length) {
    const t = next();
    if (t === "package") {
      result.package = next();
      expect(";");
    } else if (t === "message") parseMessage("");
    else if (t === "enum") parseEnum("");
    else if (t === ";") continue;
    else skipStatement();
  }
  return result;
}
