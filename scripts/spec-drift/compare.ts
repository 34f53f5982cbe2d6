/**
 * Compares the SDK's surface with spec/ and lists every difference with a stable id (what the allowlist names).
 */
import type { Alias, Endpoint, Field, Model, ProtoFile, SdkSurface, SpecSurface, WireType } from "./model.js";

/** One difference between the SDK and spec/. */
export interface Difference {
  /** The group it is reported under: `POST /api/v1/asample`, `schema Checkpoint`, `proto message Datum`. */
  subject: string;
  /** What differs, e.g. `field expires_at missing from spec`. */
  detail: string;
  /** `subject: detail`, the allowlist key. */
  id: string;
  /** Where the SDK side was read, when known. */
  where?: string;
}

/** A route the spec models differently on purpose (decision 6: checkpoint ids split in two path parameters). */
export interface RouteAlias {
  sdk: string;
  spec: string;
  reason: string;
}

/** `/a/{x}/b/{y}` → `/a/{}/b/{}`, so that parameter names do not matter. */
export function routeKey(method: string, path: string): string {
  return `${method.toUpperCase()} ${path.replace(/\{[^}]*\}/g, "{}")}`;
}

function diff(list: Difference[], subject: string, detail: string, where?: string): void {
  const d: Difference = { subject, detail, id: `${subject}: ${detail}` };
  if (where) d.where = where;
  list.push(d);
}

/** A model compared as something the SDK sends (`request`) or parses (`response`). */
type Role = "request" | "response";

interface Side {
  models: Map<string, Model>;
  aliases: Map<string, Alias>;
}

/** Expands aliases, strips `null` from unions, merges int|float and unions of arrays. */
function normalize(t: WireType, side: Side, seen = new Set<string>()): { type: WireType; nullable: boolean } {
  if (t.kind === "ref" && !side.models.has(t.name)) {
    const alias = side.aliases.get(t.name);
    if (alias && !seen.has(t.name)) {
      const inner = normalize(alias.type, side, new Set([...seen, t.name]));
      if (inner.type.kind === "enum") inner.type = { ...inner.type, name: t.name };
      return inner;
    }
  }
  if (t.kind === "bytes") return { type: { kind: "string" }, nullable: false };
  if (t.kind === "map" && t.values.kind === "any") return { type: { kind: "object" }, nullable: false };
  if (t.kind === "array") return { type: { kind: "array", items: normalize(t.items, side, seen).type }, nullable: false };
  if (t.kind === "map") return { type: { kind: "map", values: normalize(t.values, side, seen).type }, nullable: false };
  if (t.kind === "enum" && t.values.length === 1 && !t.name) return { type: { kind: "const", value: t.values[0]! }, nullable: false };
  if (t.kind !== "union") return { type: t, nullable: t.kind === "null" };
  let nullable = false;
  let members: WireType[] = [];
  for (const m of t.members) {
    const n = normalize(m, side, seen);
    nullable ||= n.nullable;
    if (n.type.kind === "null") continue;
    if (n.type.kind === "union") members.push(...n.type.members);
    else members.push(n.type);
  }
  if (members.some((m) => m.kind === "number")) members = members.filter((m) => m.kind !== "integer");
  if (members.length > 1 && members.every((m) => m.kind === "array")) {
    const items = normalize({ kind: "union", members: members.map((m) => (m as { items: WireType }).items) }, side, seen);
    members = [{ kind: "array", items: items.type }];
  }
  const unique = new Map(members.map((m) => [JSON.stringify(m), m]));
  members = [...unique.values()];
  if (members.length === 0) return { type: { kind: "null" }, nullable: true };
  return { type: members.length === 1 ? members[0]! : { kind: "union", members }, nullable };
}

/** A short readable form of a type (`array<integer>`, `Checkpoint`, `"a"|"b"`). */
export function show(t: WireType): string {
  switch (t.kind) {
    case "string":
      return t.format ? `string(${t.format})` : "string";
    case "array":
      return `array<${show(t.items)}>`;
    case "map":
      return `map<${show(t.values)}>`;
    case "ref":
      return t.name;
    case "enum":
      return t.name ?? t.values.map((v) => JSON.stringify(v)).join("|");
    case "const":
      return JSON.stringify(t.value);
    case "union":
      return t.members.map(show).join(" | ");
    default:
      return t.kind;
  }
}

class Comparer {
  readonly differences: Difference[] = [];
  private readonly pairs = new Set<string>();
  private readonly queue: { sdk: string; spec: string; role: Role }[] = [];
  private readonly enumsDone = new Set<string>();

  private readonly sdk: SdkSurface;
  private readonly spec: SpecSurface;

  constructor(sdk: SdkSurface, spec: SpecSurface) {
    this.sdk = sdk;
    this.spec = spec;
  }

  /** Schedules the comparison of SDK model `sdk` with spec schema `spec`, as a request or a response body. */
  pair(sdk: string, spec: string, role: Role): void {
    const key = `${sdk}\u0000${spec}\u0000${role}`;
    if (this.pairs.has(key)) return;
    this.pairs.add(key);
    this.queue.push({ sdk, spec, role });
  }

  run(): void {
    for (let p = this.queue.shift(); p; p = this.queue.shift()) this.compareModels(p.sdk, p.spec, p.role);
  }

  /** Whether SDK model `name` has been compared with some spec schema already. */
  compared(name: string): boolean {
    for (const key of this.pairs) if (key.startsWith(`${name}\u0000`)) return true;
    return false;
  }

  private subjectOf(sdk: string, spec: string): string {
    return sdk === spec ? `schema ${sdk}` : `schema ${sdk} (spec: ${spec})`;
  }

  private compareModels(sdkName: string, specName: string, role: Role): void {
    const subject = this.subjectOf(sdkName, specName);
    const a = this.sdk.models.get(sdkName);
    const b = this.spec.models.get(specName);
    if (!a) return;
    if (!b) {
      const alias = this.spec.aliases.get(specName);
      if (alias) {
        this.compareTypes(subject, "type", { kind: "ref", name: sdkName }, alias.type, a.source, role);
        return;
      }
      diff(this.differences, subject, "missing from spec", a.source);
      return;
    }
    const specFields = new Map(b.fields.map((f) => [f.name, f]));
    for (const f of a.fields) {
      const g = specFields.get(f.name);
      if (!g) {
        diff(this.differences, subject, `field ${f.name} missing from spec`, a.source);
        continue;
      }
      this.compareFields(subject, sdkName, f, g, a.source, role);
    }
    const sdkFields = new Set(a.fields.map((f) => f.name));
    for (const g of b.fields) {
      if (!sdkFields.has(g.name)) diff(this.differences, subject, `field ${g.name} not in SDK`, a.source);
    }
  }

  private compareFields(subject: string, model: string, f: Field, g: Field, where: string, role: Role): void {
    const fa = normalize(f.type, this.sdk);
    const fb = normalize(g.type, this.spec);
    if (role === "response") {
      // The SDK parses this: what it requires the server must send, what it cannot parse the server must not send.
      if (f.required !== g.required) {
        diff(
          this.differences,
          subject,
          `field ${f.name} is ${f.required ? "required" : "optional"} in SDK, ${g.required ? "required" : "optional"} in spec`,
          where,
        );
      }
      // The SDK is generated (Stainless): every optional property becomes `Optional[T] = None`, so an optional SDK
      // field says nothing about null when the spec field is optional too.
      const optionalOnly = !f.required && f.defaultValue === "null" && !g.required;
      if (fa.nullable !== fb.nullable && !(fa.nullable && optionalOnly)) {
        diff(
          this.differences,
          subject,
          `field ${f.name} is ${fa.nullable ? "nullable" : "not nullable"} in SDK, ${fb.nullable ? "nullable" : "not nullable"} in spec`,
          where,
        );
      }
    } else {
      // The SDK sends this with model_dump(exclude_unset=False, exclude_none=True): a field with a non-None default
      // is always sent, a None is never sent (so "nullable" in the SDK means "sometimes absent").
      const mayOmit = (!f.required && f.defaultValue === "null") || fa.nullable;
      if (g.required && mayOmit) {
        diff(this.differences, subject, `field ${f.name} is omitted by the SDK when None, required in spec`, where);
      } else if (f.required && !fa.nullable && !g.required) {
        diff(this.differences, subject, `field ${f.name} is required in SDK, optional in spec`, where);
      }
      if (fb.nullable && !fa.nullable) diff(this.differences, subject, `field ${f.name} is never null in SDK, nullable in spec`, where);
    }
    this.compareTypes(subject, `field ${f.name}`, fa.type, fb.type, where, role);
    const sdkDefault = f.defaultValue === "null" ? undefined : f.defaultValue;
    if (sdkDefault !== undefined && g.defaultValue !== undefined && sdkDefault !== g.defaultValue) {
      diff(this.differences, subject, `field ${f.name} default is ${sdkDefault} in SDK, ${g.defaultValue} in spec`, where);
    } else if (sdkDefault !== undefined && g.defaultValue === undefined && model === "ClientConfigResponse") {
      diff(this.differences, subject, `field ${f.name} default ${sdkDefault} missing from spec`, where);
    }
  }

  /** Compares two types; nested models are paired, enums compared value by value. */
  compareTypes(subject: string, what: string, ta: WireType, tb: WireType, where: string, role: Role): void {
    const a = normalize(ta, this.sdk).type;
    const b = normalize(tb, this.spec).type;
    if (a.kind === "any" || b.kind === "any") {
      if (a.kind !== b.kind && !(b.kind === "any" && (a.kind === "object" || a.kind === "map"))) {
        diff(this.differences, subject, `${what} is ${show(a)} in SDK, ${show(b)} in spec`, where);
      }
      return;
    }
    if (a.kind === "ref" && b.kind === "ref") {
      this.pair(a.name, b.name, role);
      return;
    }
    if (a.kind === "array" && b.kind === "array") {
      this.compareTypes(subject, `${what}[]`, a.items, b.items, where, role);
      return;
    }
    if (a.kind === "map" && b.kind === "map") {
      this.compareTypes(subject, `${what}{}`, a.values, b.values, where, role);
      return;
    }
    // A one-value enum is a const; against an enum it is compared value by value.
    const asEnum = (t: WireType): { values: string[]; name?: string } | undefined =>
      t.kind === "enum" ? t : t.kind === "const" ? { values: [String(t.value)] } : undefined;
    const ea = asEnum(a);
    const eb = asEnum(b);
    if (ea && eb && (a.kind === "enum" || b.kind === "enum")) {
      this.compareEnums(subject, what, ea, eb, where);
      return;
    }
    // One model against a union of models: compare as two unions (each variant is reported on its own).
    if (
      (a.kind === "union" || b.kind === "union") &&
      (a.kind === "union" || a.kind === "ref") &&
      (b.kind === "union" || b.kind === "ref")
    ) {
      const membersA = a.kind === "union" ? a.members : [a];
      const membersB = b.kind === "union" ? b.members : [b];
      const refsA = membersA.filter((m) => m.kind === "ref").map((m) => (m as { name: string }).name);
      const refsB = new Set(membersB.filter((m) => m.kind === "ref").map((m) => (m as { name: string }).name));
      if (refsA.length === membersA.length && refsB.size === membersB.length) {
        for (const r of refsA) {
          if (refsB.has(r)) this.pair(r, r, role);
          else diff(this.differences, subject, `${what} variant ${r} missing from spec`, where);
        }
        for (const r of refsB) if (!refsA.includes(r)) diff(this.differences, subject, `${what} variant ${r} not in SDK`, where);
        return;
      }
    }
    if (JSON.stringify(a) !== JSON.stringify(b)) diff(this.differences, subject, `${what} is ${show(a)} in SDK, ${show(b)} in spec`, where);
  }

  private compareEnums(
    subject: string,
    what: string,
    a: { values: string[]; name?: string },
    b: { values: string[]; name?: string },
    where: string,
  ): void {
    // A named enum on both sides is reported once, under its own name.
    if (a.name && b.name) {
      subject = a.name === b.name ? `enum ${a.name}` : `enum ${a.name} (spec: ${b.name})`;
      what = "value";
      if (this.enumsDone.has(subject)) return;
      this.enumsDone.add(subject);
      where = this.sdk.aliases.get(a.name)?.source ?? where;
    } else what = `${what} value`;
    for (const v of a.values)
      if (!b.values.includes(v)) diff(this.differences, subject, `${what} ${JSON.stringify(v)} missing from spec`, where);
    for (const v of b.values) if (!a.values.includes(v)) diff(this.differences, subject, `${what} ${JSON.stringify(v)} not in SDK`, where);
  }

  compareEndpoints(aliases: RouteAlias[], usedAliases: Set<RouteAlias>): void {
    const dedupe = (list: Endpoint[]): Map<string, Endpoint> => {
      const map = new Map<string, Endpoint>();
      for (const e of list) if (!map.has(routeKey(e.method, e.path))) map.set(routeKey(e.method, e.path), e);
      return map;
    };
    const sdk = dedupe(this.sdk.endpoints);
    const spec = dedupe(this.spec.endpoints);
    const aliasOf = new Map<string, RouteAlias>();
    for (const alias of aliases) {
      const [m, p] = alias.sdk.split(/\s+/);
      aliasOf.set(routeKey(m!, p!), alias);
    }
    const matchedSpec = new Set<string>();
    for (const [key, e] of sdk) {
      let specKey = key;
      const alias = aliasOf.get(key);
      if (!spec.has(key) && alias) {
        const [m, p] = alias.spec.split(/\s+/);
        specKey = routeKey(m!, p!);
        if (spec.has(specKey)) usedAliases.add(alias);
      }
      const subject = `${e.method} ${e.path}`;
      const s = spec.get(specKey);
      if (!s) {
        diff(this.differences, subject, "missing from spec", e.source);
        continue;
      }
      matchedSpec.add(specKey);
      this.compareEndpoint(subject, e, s);
    }
    for (const [key, s] of spec) {
      if (!matchedSpec.has(key)) diff(this.differences, `${s.method} ${s.path}`, "not called by the SDK");
    }
  }

  private compareEndpoint(subject: string, e: Endpoint, s: Endpoint): void {
    const specFormats: string[] = s.formats ?? [s.body];
    if (e.body !== "none" && !specFormats.includes(e.body)) {
      diff(this.differences, subject, `request body is ${e.body} in SDK, ${specFormats.join(" or ")} in spec`, e.source);
    } else if (e.body === "none" && s.body !== "none") {
      diff(this.differences, subject, `request body is none in SDK, ${specFormats.join(" or ")} in spec`, e.source);
    } else if (e.body === "json") {
      if (e.requestType && s.requestType) this.pair(e.requestType, s.requestType, "request");
      else if (e.requestKeys) {
        const specKeys = s.requestType ? (this.spec.models.get(s.requestType)?.fields.map((f) => f.name) ?? []) : (s.requestKeys ?? []);
        for (const k of e.requestKeys)
          if (!specKeys.includes(k)) diff(this.differences, subject, `request field ${k} missing from spec`, e.source);
        for (const k of specKeys)
          if (!e.requestKeys.includes(k)) diff(this.differences, subject, `request field ${k} not in SDK`, e.source);
      }
    }
    if (e.responseType !== undefined) {
      if (e.responseType === "none") {
        // The SDK ignores the body; nothing to compare.
      } else if (s.responseType === undefined || s.responseType === "none") {
        diff(this.differences, subject, `response ${e.responseType} has no schema in spec`, e.source);
      } else if (this.sdk.models.has(e.responseType) || this.sdk.aliases.has(e.responseType)) {
        if (this.sdk.aliases.has(e.responseType)) {
          this.compareTypes(
            subject,
            "response",
            { kind: "ref", name: e.responseType },
            { kind: "ref", name: s.responseType },
            e.source,
            "response",
          );
          const specAlias = this.spec.aliases.get(s.responseType);
          const sdkAlias = this.sdk.aliases.get(e.responseType)!;
          if (specAlias) this.compareTypes(subject, "response", sdkAlias.type, specAlias.type, e.source, "response");
        } else this.pair(e.responseType, s.responseType, "response");
      }
    }
    for (const q of e.query) if (!s.query.includes(q)) diff(this.differences, subject, `query parameter ${q} missing from spec`, e.source);
    for (const q of s.query) if (!e.query.includes(q)) diff(this.differences, subject, `query parameter ${q} not in SDK`, e.source);
  }

  compareFutures(): void {
    for (const name of this.sdk.futureResults) {
      if (this.spec.futureResults.includes(name)) this.pair(name, name, "response");
      else diff(this.differences, "future results", `${name} is not the x-tinker-future-result of any spec operation`);
    }
  }

  compareProto(a: ProtoFile | undefined, b: ProtoFile | undefined): void {
    if (!a) return;
    if (!b) return;
    const specMessages = new Map(b.messages.map((m) => [m.name, m]));
    for (const m of a.messages) {
      const subject = `proto message ${m.name}`;
      const n = specMessages.get(m.name);
      if (!n) {
        diff(this.differences, subject, "missing from spec");
        continue;
      }
      const fields = new Map(n.fields.map((f) => [f.name, f]));
      for (const f of m.fields) {
        const g = fields.get(f.name);
        if (!g) {
          diff(this.differences, subject, `field ${f.name} = ${f.number} missing from spec`);
          continue;
        }
        if (f.number !== g.number) diff(this.differences, subject, `field ${f.name} number is ${f.number} in SDK, ${g.number} in spec`);
        if (f.type !== g.type) diff(this.differences, subject, `field ${f.name} type is ${f.type} in SDK, ${g.type} in spec`);
        if (f.label !== g.label) diff(this.differences, subject, `field ${f.name} is ${f.label} in SDK, ${g.label} in spec`);
        if ((f.oneof ?? "") !== (g.oneof ?? "")) {
          diff(this.differences, subject, `field ${f.name} oneof is ${f.oneof ?? "(none)"} in SDK, ${g.oneof ?? "(none)"} in spec`);
        }
      }
      for (const g of n.fields)
        if (!m.fields.some((f) => f.name === g.name)) diff(this.differences, subject, `field ${g.name} = ${g.number} not in SDK`);
    }
    for (const n of b.messages)
      if (!a.messages.some((m) => m.name === n.name)) diff(this.differences, `proto message ${n.name}`, "not in SDK");
    const specEnums = new Map(b.enums.map((e) => [e.name, e]));
    for (const e of a.enums) {
      const subject = `proto enum ${e.name}`;
      const f = specEnums.get(e.name);
      if (!f) {
        diff(this.differences, subject, "missing from spec");
        continue;
      }
      for (const v of e.values) {
        const w = f.values.find((x) => x.name === v.name);
        if (!w) diff(this.differences, subject, `value ${v.name} = ${v.number} missing from spec`);
        else if (w.number !== v.number) diff(this.differences, subject, `value ${v.name} is ${v.number} in SDK, ${w.number} in spec`);
      }
      for (const w of f.values)
        if (!e.values.some((v) => v.name === w.name)) diff(this.differences, subject, `value ${w.name} = ${w.number} not in SDK`);
    }
    for (const f of b.enums) if (!a.enums.some((e) => e.name === f.name)) diff(this.differences, `proto enum ${f.name}`, "not in SDK");
  }
}

/** Compares everything; returns the differences (sorted by subject, then detail) and the route aliases used. */
export function compare(
  sdk: SdkSurface,
  spec: SpecSurface,
  routes: RouteAlias[] = [],
): { differences: Difference[]; usedRoutes: Set<RouteAlias>; uncompared: string[] } {
  const c = new Comparer(sdk, spec);
  const usedRoutes = new Set<RouteAlias>();
  c.compareEndpoints(routes, usedRoutes);
  c.compareFutures();
  // Named enums of the SDK that the spec defines under the same name are compared even when no field reaches them.
  for (const [name, alias] of sdk.aliases) {
    const specAlias = spec.aliases.get(name);
    if (alias.type.kind === "enum" && specAlias)
      c.compareTypes(
        `enum ${name}`,
        "value",
        alias.type,
        { ...specAlias.type, ...(specAlias.type.kind === "enum" ? { name } : {}) } as WireType,
        alias.source,
        "response",
      );
  }
  c.run();
  // Models no endpoint reaches (e.g. the JSON form of forward_backward, which SDK 0.25 sends as protobuf) are still
  // compared with the spec schema of the same name: as a request if a spec request body reaches it.
  const requestSide = requestReachable(spec);
  for (const name of [...sdk.models.keys()].sort()) {
    if (spec.models.has(name) && !c.compared(name)) c.pair(name, name, requestSide.has(name) ? "request" : "response");
  }
  c.run();
  if (sdk.proto && spec.proto) c.compareProto(sdk.proto, spec.proto);
  const seen = new Set<string>();
  const differences = c.differences.filter((d) => {
    if (seen.has(d.id)) return false;
    seen.add(d.id);
    return true;
  });
  differences.sort((x, y) => x.subject.localeCompare(y.subject) || x.detail.localeCompare(y.detail));
  const uncompared = [...sdk.models.keys()].filter((name) => !c.compared(name)).sort();
  return { differences, usedRoutes, uncompared };
}

/** Spec schemas reachable from a request body. */
function requestReachable(spec: SpecSurface): Set<string> {
  const seen = new Set<string>();
  const visit = (t: WireType): void => {
    if (t.kind === "ref") {
      if (seen.has(t.name)) return;
      seen.add(t.name);
      const model = spec.models.get(t.name);
      if (model) for (const f of model.fields) visit(f.type);
      const alias = spec.aliases.get(t.name);
      if (alias) visit(alias.type);
    } else if (t.kind === "array") visit(t.items);
    else if (t.kind === "map") visit(t.values);
    else if (t.kind === "union") t.members.forEach(visit);
  };
  for (const e of spec.endpoints) if (e.requestType) visit({ kind: "ref", name: e.requestType });
  return seen;
}
