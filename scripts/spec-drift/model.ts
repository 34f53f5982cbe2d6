/**
 * The normalised shapes both sides of the drift comparison are read into: the official Python SDK (read from its
 * sources) and this project's `spec/` (the OpenAPI file and the `.proto`).
 */

/** A wire type, normalised so that a Python annotation and an OpenAPI schema can be compared. */
export type WireType =
  | { kind: "string"; format?: string }
  | { kind: "integer" }
  | { kind: "number" }
  | { kind: "boolean" }
  | { kind: "bytes" }
  | { kind: "any" }
  | { kind: "object" }
  | { kind: "null" }
  | { kind: "array"; items: WireType }
  | { kind: "map"; values: WireType }
  | { kind: "ref"; name: string }
  | { kind: "enum"; values: string[]; name?: string }
  | { kind: "const"; value: string | number | boolean }
  | { kind: "union"; members: WireType[] };

/** One field of a JSON model. */
export interface Field {
  name: string;
  type: WireType;
  required: boolean;
  nullable: boolean;
  /** The default as JSON text (`1024`, `"api_key"`, `true`), when one is declared. */
  defaultValue?: string;
}

/** A JSON object model (pydantic model / OpenAPI object schema). */
export interface Model {
  name: string;
  fields: Field[];
  /** Where it was read from, for the report (`types/checkpoint.py:9`). */
  source: string;
}

/** A named alias: an enum (Literal / StrEnum) or a union of models, or an alias of another type. */
export interface Alias {
  name: string;
  type: WireType;
  source: string;
}

/** One HTTP endpoint. */
export interface Endpoint {
  method: string;
  /** The path with parameter names kept (`/api/v1/sessions/{session_id}`). */
  path: string;
  /** `json`, `protobuf`, or `none` when no body is sent. */
  body: "json" | "protobuf" | "none";
  /** Spec only: every body format the operation accepts (a spec may accept JSON and protobuf). */
  formats?: ("json" | "protobuf")[];
  /** The request model, when the body is one. */
  requestType?: string;
  /** When the body is a literal object, its keys. */
  requestKeys?: string[];
  /** The response model, `none` (no body used) or undefined when unknown. */
  responseType?: string;
  /** Query parameter names. */
  query: string[];
  source: string;
}

/** A protobuf field. `type` is a scalar name (`int32`, `bytes`) or a message/enum short name. */
export interface ProtoField {
  name: string;
  number: number;
  type: string;
  label: "singular" | "optional" | "repeated";
  oneof?: string;
  map?: { key: string; value: string };
}

export interface ProtoMessage {
  name: string;
  fields: ProtoField[];
}

export interface ProtoEnum {
  name: string;
  values: { name: string; number: number }[];
}

export interface ProtoFile {
  package: string;
  messages: ProtoMessage[];
  enums: ProtoEnum[];
}

/** Everything read from the Python SDK. */
export interface SdkSurface {
  version?: string;
  models: Map<string, Model>;
  aliases: Map<string, Alias>;
  endpoints: Endpoint[];
  /** Models the SDK parses future results into (`_APIFuture(types.X, ...)`). */
  futureResults: string[];
  proto?: ProtoFile;
}

/** Everything read from spec/. */
export interface SpecSurface {
  models: Map<string, Model>;
  aliases: Map<string, Alias>;
  endpoints: Endpoint[];
  futureResults: string[];
  /** Undefined when spec/tinker_public.proto does not exist. */
  proto?: ProtoFile;
}
