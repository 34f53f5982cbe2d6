/**
 * `npm run spec:drift`: the SDK reader, the comparison, the allowlist and the exit code, on small fixtures that
 * imitate the official Python SDK's layout (test/fixtures/sdk-mini) and spec/ (test/fixtures/spec-mini).
 * No Python and no real SDK are needed.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { parse, stringify } from "yaml";
import { runDrift, type DriftResult } from "../scripts/spec-drift/drift.js";
import { readSdk } from "../scripts/spec-drift/python-sdk.js";

const FIXTURES = fileURLToPath(new URL("./fixtures/", import.meta.url));
const SDK = path.join(FIXTURES, "sdk-mini");
const SPEC = path.join(FIXTURES, "spec-mini");
const MAIN = fileURLToPath(new URL("../scripts/spec-drift/main.ts", import.meta.url));

const temps: string[] = [];
after(() => {
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

/** Copies a fixture to a temporary folder so that a test can change it. */
function copy(fixture: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), "spec-drift-"));
  temps.push(dir);
  cpSync(fixture, dir, { recursive: true });
  return dir;
}

// biome-ignore lint/suspicious/noExplicitAny: a parsed OpenAPI YAML document, edited at arbitrary depth by each test
type Doc = Record<string, any>;

/** The spec fixture with `edit` applied to its parsed OpenAPI document (and optionally its .proto and allowlist). */
function specWith(edit: (doc: Doc) => void, extra: { proto?: (text: string) => string; allowlist?: object } = {}): string {
  const dir = copy(SPEC);
  const file = path.join(dir, "tinker.openapi.yaml");
  const doc = parse(readFileSync(file, "utf8")) as Doc;
  edit(doc);
  writeFileSync(file, stringify(doc));
  if (extra.proto) {
    const proto = path.join(dir, "tinker_public.proto");
    writeFileSync(proto, extra.proto(readFileSync(proto, "utf8")));
  }
  if (extra.allowlist) writeFileSync(path.join(dir, "drift-allowlist.yaml"), stringify(extra.allowlist));
  return dir;
}

/** The SDK fixture with one file's text replaced. */
function sdkWith(file: string, from: string, to: string): string {
  const dir = copy(SDK);
  const target = path.join(dir, "src", "tinker", file);
  const text = readFileSync(target, "utf8");
  assert.ok(text.includes(from), `fixture ${file} should contain ${from}`);
  writeFileSync(target, text.replace(from, to));
  return dir;
}

function drift(specDir: string, sdkDir = SDK): DriftResult {
  return runDrift({ sdkDir, specDir, allowlistPath: path.join(specDir, "drift-allowlist.yaml") });
}

/** The ids of the differences the allowlist does not accept. */
function unlisted(result: DriftResult): string[] {
  return result.differences.filter((d) => !d.allowedBy).map((d) => d.id);
}

const BASE_ALLOWLIST = parse(readFileSync(path.join(SPEC, "drift-allowlist.yaml"), "utf8")) as Doc;

describe("spec:drift", () => {
  test("the fixture SDK and the fixture spec agree: no difference, exit code 0", () => {
    const result = drift(SPEC);
    assert.deepEqual(unlisted(result), []);
    assert.deepEqual(result.stale, []);
    assert.equal(result.exitCode, 0);
    assert.match(result.report, /Python SDK 9\.9\.9/);
  });

  test("the reader finds every call, field, default and proto message, and nothing from docstrings, methods or tests", () => {
    const sdk = readSdk(SDK);
    const calls = sdk.endpoints.map((e) => `${e.method} ${e.path}`).sort();
    assert.deepEqual(calls, [
      "DELETE /api/v1/widgets/{widget_id}",
      "GET /api/v1/widgets",
      "GET /api/v1/widgets/{widget_id}",
      "GET /api/v1/widgets/{widget_id}/blobs/{blob_id}/archive",
      "POST /api/v1/build_widget",
      "POST /api/v1/client/config",
      "POST /api/v1/create_widget",
    ]);
    const list = sdk.endpoints.find((e) => e.path === "/api/v1/widgets")!;
    assert.deepEqual(list.query, ["limit", "offset", "owner"]);
    assert.equal(sdk.endpoints.find((e) => e.path.endsWith("/archive"))!.responseType, "ArchiveUrlResponse");
    const build = sdk.endpoints.find((e) => e.path === "/api/v1/build_widget")!;
    assert.equal(build.body, "protobuf");
    assert.equal(build.requestType, "BuildWidgetRequest");
    const create = sdk.models.get("CreateWidgetRequest")!;
    assert.deepEqual(
      create.fields.map((f) => f.name),
      ["name", "owner_id", "chunks", "loss_fn", "labels", "size", "seq_id", "type"],
    );
    assert.equal(create.fields.find((f) => f.name === "size")!.defaultValue, "3");
    // The wire form (_pydantic_types) wins over the public dataclass of the same name.
    assert.deepEqual(
      sdk.models.get("TensorData")!.fields.map((f) => f.name),
      ["data", "dtype", "shape"],
    );
    const config = sdk.models.get("ClientConfigResponse")!;
    assert.deepEqual(
      config.fields.map((f) => [f.name, f.defaultValue]),
      [
        ["fast_mode", "false"],
        ["max_chunk_bytes", "5000000"],
        ["dispatch_bytes", "50000000"],
        ["credential_source", '"api_key"'],
        ["channel", '"beta#2"'],
      ],
    );
    // A pydantic alias is the wire name.
    assert.ok(sdk.models.get("Widget")!.fields.some((f) => f.name === "displayName"));
    assert.deepEqual(sdk.aliases.get("WidgetKind")!.type, { kind: "enum", values: ["small", "large"], name: "WidgetKind" });
    assert.deepEqual(sdk.futureResults, ["BuildWidgetOutput"]);
    const request = sdk.proto!.messages.find((m) => m.name === "BuildWidgetRequest")!;
    assert.deepEqual(
      request.fields.map((f) => `${f.label} ${f.type} ${f.name} = ${f.number}${f.oneof ? ` (${f.oneof})` : ""}`),
      ["singular string widget_id = 1", "repeated Item items = 2", "singular map<string,double> config = 3", "optional int32 seed = 4"],
    );
    assert.deepEqual(
      sdk.proto!.messages.find((m) => m.name === "Item")!.fields.map((f) => f.oneof ?? "-"),
      ["payload", "payload", "-", "-"],
    );
  });

  test("a repository root and the package folder are both accepted; anything else is a clear error", () => {
    const fromPackage = runDrift({
      sdkDir: path.join(SDK, "src", "tinker"),
      specDir: SPEC,
      allowlistPath: path.join(SPEC, "drift-allowlist.yaml"),
    });
    assert.equal(fromPackage.exitCode, 0);
    assert.throws(() => drift(SPEC, FIXTURES), /is not a checkout of the Tinker Python SDK: expected src\/tinker\/types/);
  });

  test("an endpoint the SDK calls and the spec lacks, and one the SDK never calls", () => {
    const result = drift(
      specWith((doc) => {
        delete doc.paths["/api/v1/widgets"];
        doc.paths["/api/v1/gadgets"] = { get: { responses: { "204": { description: "ok" } } } };
      }),
    );
    assert.deepEqual(unlisted(result), ["GET /api/v1/gadgets: not called by the SDK", "GET /api/v1/widgets: missing from spec"]);
    assert.equal(result.exitCode, 1);
    assert.match(result.report, /GET \/api\/v1\/widgets\n {2}DRIFT {4}missing from spec {2}\[lib\/rest_client\.py:\d+\]/);
  });

  test("a field only in the spec, a field only in the SDK", () => {
    const spec = specWith((doc) => {
      doc.components.schemas.Widget.properties.color = { type: "string" };
    });
    const sdk = sdkWith("types/widget.py", "    public: bool = False", "    public: bool = False\n\n    weight: float = 1.5");
    assert.deepEqual(unlisted(drift(spec, sdk)), [
      "schema Widget: field color not in SDK",
      "schema Widget: field weight missing from spec",
    ]);
  });

  test("required vs optional: in a response strictly, in a request as the SDK sends it", () => {
    const result = drift(
      specWith((doc) => {
        const widget = doc.components.schemas.Widget;
        widget.required = widget.required.filter((n: string) => n !== "created");
        doc.components.schemas.CreateWidgetRequest.required.push("seq_id", "size");
      }),
    );
    // `size` has a default, so the SDK always sends it: requiring it is no drift. `seq_id` defaults to None: it is.
    assert.deepEqual(unlisted(result), [
      "schema CreateWidgetRequest: field seq_id is omitted by the SDK when None, required in spec",
      "schema Widget: field created is required in SDK, optional in spec",
    ]);
  });

  test("nullable, type, default and union variants", () => {
    const result = drift(
      specWith((doc) => {
        const s = doc.components.schemas;
        s.Widget.properties.created = { type: ["string", "null"], format: "date-time" };
        s.Widget.properties.size_bytes = { type: ["string", "null"] };
        s.ClientConfigResponse.properties.max_chunk_bytes.default = 4000000;
        delete s.ClientConfigResponse.properties.dispatch_bytes.default;
        s.CreateWidgetRequest.properties.chunks.items = { $ref: "#/components/schemas/TextChunk" };
      }),
    );
    assert.deepEqual(unlisted(result), [
      "schema ClientConfigResponse: field dispatch_bytes default 50000000 missing from spec",
      "schema ClientConfigResponse: field max_chunk_bytes default is 5000000 in SDK, 4000000 in spec",
      "schema CreateWidgetRequest: field chunks[] variant ImageChunk missing from spec",
      "schema Widget: field created is not nullable in SDK, nullable in spec",
      "schema Widget: field size_bytes is integer in SDK, string in spec",
    ]);
  });

  test("enum values: a Literal alias, a StrEnum, an inline Literal", () => {
    const spec = specWith((doc) => {
      const s = doc.components.schemas;
      s.LossFnType.enum.push("dro");
      s.WidgetKind.enum = ["small", "huge"];
      s.ImageChunk.properties.format.enum = ["png"];
    });
    assert.deepEqual(unlisted(drift(spec)), [
      'enum LossFnType: value "dro" not in SDK',
      'enum WidgetKind: value "huge" not in SDK',
      'enum WidgetKind: value "large" missing from spec',
      'schema ImageChunk: field format value "jpeg" missing from spec',
    ]);
    const sdk = sdkWith("types/loss_fn_type.py", '"ppo",', '"ppo",\n    "cispo",');
    assert.deepEqual(unlisted(drift(SPEC, sdk)), ['enum LossFnType: value "cispo" missing from spec']);
  });

  test("query parameters, request body format, and request keys of a literal body", () => {
    const result = drift(
      specWith((doc) => {
        doc.paths["/api/v1/widgets"].get.parameters.pop();
        doc.paths["/api/v1/build_widget"].post.requestBody.content = { "application/json": { schema: { type: "object" } } };
        doc.paths["/api/v1/client/config"].post.requestBody.content["application/json"].schema.properties.platform = { type: "string" };
      }),
    );
    assert.deepEqual(unlisted(result), [
      "GET /api/v1/widgets: query parameter owner missing from spec",
      "POST /api/v1/build_widget: request body is protobuf in SDK, json in spec",
      "POST /api/v1/client/config: request field platform not in SDK",
    ]);
    // A spec operation that accepts both JSON and protobuf accepts what the SDK sends.
    const both = drift(
      specWith((doc) => {
        const content = doc.paths["/api/v1/build_widget"].post.requestBody.content;
        content["application/json"] = { schema: { type: "object" } };
      }),
    );
    assert.deepEqual(unlisted(both), []);
  });

  test("proto: field number, type, label, oneof, enum values, messages", () => {
    const spec = specWith(() => {}, {
      proto: (text) =>
        text
          .replace("string format = 2;", "string format = 5;")
          .replace("repeated int64 shape = 4;", "repeated int32 shape = 4;")
          .replace("optional int32 seed = 4;", "int32 seed = 4;")
          .replace(" DTYPE_INT64 = 2;", " DTYPE_INT64 = 3;")
          .concat("\nmessage Extra { string note = 1; }\n"),
    });
    assert.deepEqual(unlisted(drift(spec)), [
      "proto enum DType: value DTYPE_INT64 is 2 in SDK, 3 in spec",
      "proto message Blob: field format number is 2 in SDK, 5 in spec",
      "proto message BuildWidgetRequest: field seed is optional in SDK, singular in spec",
      "proto message Extra: not in SDK",
      "proto message Item: field shape type is int64 in SDK, int32 in spec",
    ]);
  });

  test("a spec without the .proto says so and fails", () => {
    const dir = specWith(() => {});
    rmSync(path.join(dir, "tinker_public.proto"));
    const result = drift(dir);
    assert.deepEqual(unlisted(result), ["proto: spec/tinker_public.proto missing"]);
    assert.match(result.report, /the SDK defines 3 messages and 1 enums, not compared/);
    assert.equal(result.exitCode, 1);
  });

  test("an allow-listed difference passes and the report shows its reason; a `*` entry covers a group", () => {
    const edit = (doc: Doc) => {
      delete doc.paths["/api/v1/widgets"];
      doc.components.schemas.Widget.properties.color = { type: "string" };
      doc.components.schemas.Widget.properties.shade = { type: "string" };
    };
    const allowlist = {
      ...BASE_ALLOWLIST,
      differences: [
        { id: "GET /api/v1/widgets: missing from spec", reason: "pending issue 99" },
        { id: "schema Widget: field * not in SDK", reason: "decision 42: the service sends extra fields" },
      ],
    };
    const result = drift(specWith(edit, { allowlist }));
    assert.deepEqual(unlisted(result), []);
    assert.deepEqual(result.stale, []);
    assert.equal(result.exitCode, 0);
    assert.match(result.report, /GET \/api\/v1\/widgets\n {2}allowed {2}missing from spec {2}\(pending issue 99\)/);
    assert.match(result.report, /allowed {2}field shade not in SDK {2}\(decision 42/);
    assert.match(result.report, /3 difference\(s\): 3 allowed, 0 not in the allowlist/);
  });

  test("stale allowlist entries and route aliases are reported and fail the check", () => {
    const allowlist = {
      routes: [...BASE_ALLOWLIST.routes, { sdk: "GET /api/v1/nothing/{x}", spec: "GET /api/v1/nothing/{a}/{b}", reason: "decision 6" }],
      differences: [{ id: "schema Widget: field color not in SDK", reason: "pending issue 99" }],
    };
    const result = drift(specWith(() => {}, { allowlist }));
    assert.deepEqual(unlisted(result), []);
    assert.equal(result.stale.length, 2);
    assert.equal(result.exitCode, 1);
    assert.match(
      result.report,
      /stale allowlist entries[^\n]*\n {2}- route GET \/api\/v1\/nothing\/\{x\} => GET \/api\/v1\/nothing\/\{a\}\/\{b\}\n {2}- schema Widget: field color not in SDK/,
    );
  });

  test("without its route alias a split route is two differences", () => {
    const result = drift(specWith(() => {}, { allowlist: { routes: [], differences: [] } }));
    assert.deepEqual(unlisted(result), [
      "GET /api/v1/widgets/{id}/blobs/{blob_kind}/{blob_name}/archive: not called by the SDK",
      "GET /api/v1/widgets/{widget_id}/blobs/{blob_id}/archive: missing from spec",
    ]);
  });

  test("an allowlist entry without a reason is refused", () => {
    const dir = specWith(() => {}, { allowlist: { differences: [{ id: "GET /api/v1/widgets: missing from spec" }] } });
    assert.throws(() => drift(dir), /differences\[0\] \(GET \/api\/v1\/widgets: missing from spec\) needs a non-empty "reason"/);
  });

  test("the command exits 0 when clean, 1 on drift, 2 on bad input", async () => {
    const run = (args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(process.execPath, ["--import", "tsx", MAIN, ...args], (error, stdout, stderr) => {
          resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
        });
      });
    const drifted = specWith((doc) => {
      delete doc.paths["/api/v1/widgets"];
    });
    const [clean, dirty, bad] = await Promise.all([
      run([SDK, "--spec", SPEC]),
      run([SDK, "--spec", drifted]),
      run([path.join(FIXTURES, "no-such-sdk"), "--spec", SPEC]),
    ]);
    assert.equal(clean.code, 0, clean.stderr);
    assert.match(clean.stdout, /0 difference\(s\)/);
    assert.equal(dirty.code, 1, dirty.stderr);
    assert.match(dirty.stdout, /DRIFT {4}missing from spec/);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /not a checkout of the Tinker Python SDK/);
  });
});
