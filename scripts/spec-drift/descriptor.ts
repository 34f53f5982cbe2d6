/**
 * Reads the serialized `FileDescriptorProto` that protoc embeds in a generated `*_pb2.py`, without protobuf or
 * Python: a Python bytes literal decoder and a minimal protobuf wire reader for the descriptor.proto fields used.
 */
import type { ProtoField, ProtoFile, ProtoMessage } from "./model.js";

/** Decodes the body of a Python `b'...'` literal (escapes `\xNN`, `\NNN`, `\n`, `\'`, ...). */
export function decodePythonBytes(body: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c !== "\\") {
      out.push(c.charCodeAt(0));
      continue;
    }
    const n = body[++i]!;
    if (n === "x") {
      out.push(parseInt(body.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (/[0-7]/.test(n)) {
      let j = i;
      while (j < i + 3 && /[0-7]/.test(body[j] ?? "")) j++;
      out.push(parseInt(body.slice(i, j), 8));
      i = j - 1;
    } else {
      const simple: Record<string, number> = { n: 10, r: 13, t: 9, "\\": 92, "'": 39, '"': 34, a: 7, b: 8, f: 12, v: 11 };
      const v = simple[n];
      if (v === undefined) throw new Error(`unknown escape \\${n} in a Python bytes literal`);
      out.push(v);
    }
  }
  return Uint8Array.from(out);
}

/** Finds `AddSerializedFile(b'...')` in a generated `_pb2.py` and returns the descriptor bytes. */
export function extractSerializedDescriptor(pySource: string): Uint8Array {
  const m = /AddSerializedFile\(\s*b(['"])((?:\\.|(?!\1).)*)\1\s*\)/s.exec(pySource);
  if (!m) throw new Error('no AddSerializedFile(b"...") call found in the _pb2.py file');
  return decodePythonBytes(m[2]!);
}

type Value = number | bigint | Uint8Array;

/** Splits one message into (field number → values) without a schema. */
function readFields(buf: Uint8Array): Map<number, Value[]> {
  const fields = new Map<number, Value[]>();
  let pos = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (pos >= buf.length) throw new Error("truncated varint in the protobuf descriptor");
      const b = buf[pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
  };
  while (pos < buf.length) {
    const key = Number(varint());
    const field = key >>> 3;
    const wire = key & 7;
    let value: Value;
    if (wire === 0) value = varint();
    else if (wire === 2) {
      const len = Number(varint());
      value = buf.subarray(pos, pos + len);
      pos += len;
    } else if (wire === 5) {
      value = pos;
      pos += 4;
    } else if (wire === 1) {
      value = pos;
      pos += 8;
    } else throw new Error(`unsupported wire type ${wire} in the protobuf descriptor`);
    const list = fields.get(field) ?? [];
    list.push(value);
    fields.set(field, list);
  }
  return fields;
}

const text = (v: Value | undefined): string => (v instanceof Uint8Array ? new TextDecoder().decode(v) : "");
const num = (v: Value | undefined): number => (typeof v === "bigint" ? Number(v) : typeof v === "number" ? v : 0);
const msgs = (f: Map<number, Value[]>, n: number): Map<number, Value[]>[] =>
  (f.get(n) ?? []).filter((v): v is Uint8Array => v instanceof Uint8Array).map(readFields);

/** FieldDescriptorProto.Type numbers → .proto scalar names. */
const SCALAR_TYPES: Record<number, string> = {
  1: "double",
  2: "float",
  3: "int64",
  4: "uint64",
  5: "int32",
  6: "fixed64",
  7: "fixed32",
  8: "bool",
  9: "string",
  12: "bytes",
  13: "uint32",
  15: "sfixed32",
  16: "sfixed64",
  17: "sint32",
  18: "sint64",
};

function shortName(typeName: string): string {
  return typeName.slice(typeName.lastIndexOf(".") + 1);
}

/** Decodes a serialized FileDescriptorProto into messages and enums (nested ones flattened as `Outer.Inner`). */
export function decodeFileDescriptor(bytes: Uint8Array): ProtoFile {
  const file = readFields(bytes);
  const result: ProtoFile = { package: text(file.get(2)?.[0]), messages: [], enums: [] };
  const readEnum = (e: Map<number, Value[]>, prefix: string): void => {
    result.enums.push({
      name: prefix + text(e.get(1)?.[0]),
      values: msgs(e, 2).map((v) => ({ name: text(v.get(1)?.[0]), number: num(v.get(2)?.[0]) })),
    });
  };
  const readMessage = (m: Map<number, Value[]>, prefix: string): void => {
    const name = prefix + text(m.get(1)?.[0]);
    const nested = msgs(m, 3);
    // map<K,V> fields are repeated fields of a nested `XEntry` message whose options say map_entry = true.
    const mapEntries = new Map<string, { key: string; value: string }>();
    for (const n of nested) {
      const options = msgs(n, 7)[0];
      if (options && num(options.get(7)?.[0]) === 1) {
        const [k, v] = msgs(n, 2);
        mapEntries.set(text(n.get(1)?.[0]), { key: fieldType(k!), value: fieldType(v!) });
      } else readMessage(n, `${name}.`);
    }
    for (const e of msgs(m, 4)) readEnum(e, `${name}.`);
    const oneofs = msgs(m, 8).map((o) => text(o.get(1)?.[0]));
    const fields: ProtoField[] = msgs(m, 2).map((f) => {
      const field: ProtoField = {
        name: text(f.get(1)?.[0]),
        number: num(f.get(3)?.[0]),
        type: fieldType(f),
        label: num(f.get(4)?.[0]) === 3 ? "repeated" : num(f.get(17)?.[0]) === 1 ? "optional" : "singular",
      };
      const entry = mapEntries.get(shortName(text(f.get(6)?.[0])));
      if (field.label === "repeated" && entry) {
        field.map = entry;
        field.type = `map<${entry.key},${entry.value}>`;
        field.label = "singular";
      }
      const oneofIndex = f.get(9)?.[0];
      if (oneofIndex !== undefined && field.label !== "optional") field.oneof = oneofs[num(oneofIndex)];
      return field;
    });
    const message: ProtoMessage = { name, fields };
    result.messages.push(message);
  };
  for (const m of msgs(file, 4)) readMessage(m, "");
  for (const e of msgs(file, 5)) readEnum(e, "");
  return result;
}

function fieldType(f: Map<number, Value[]>): string {
  const type = num(f.get(5)?.[0]);
  if (type === 11 || type === 14) return shortName(text(f.get(6)?.[0]));
  return SCALAR_TYPES[type] ?? `type${type}`;
}
