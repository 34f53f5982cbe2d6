/**
 * `tinker://` checkpoint paths: a strict, total parser, a formatter, checkpoint-name validation, and their
 * errors ({@link InvalidTinkerPathError}, {@link InvalidCheckpointNameError}, both {@link InvalidArgumentError}s).
 *
 * Form: `tinker://<training_run_id>/<weights|sampler_weights>/<name>`. Run ids are opaque and may contain `:`
 * (e.g. `sess-0:train:0`). The checkpoint id the server uses in URLs is `<kind>/<name>`, e.g. `weights/ckpt-1`.
 *
 * @module
 */
import {
  CHECKPOINT_NAME_MAX_LENGTH,
  CHECKPOINT_NAME_MIN_LENGTH,
  CHECKPOINT_NAME_PATTERN,
  CHECKPOINT_NAME_RULE,
} from "../../generated/constants.js";
import { quote } from "../internal/error-text.js";
import { InvalidArgumentError, TinkerError } from "./errors.js";

/** The URL scheme prefix of every tinker path. */
export const TINKER_PATH_PREFIX = "tinker://";

/** The path segment naming a checkpoint's kind: training state (`weights`) or sampler weights. */
export type CheckpointKind = "weights" | "sampler_weights";

/** The server's `checkpoint_type`: `training` for `weights`, `sampler` for `sampler_weights`. */
export type CheckpointType = "training" | "sampler";

/** The parts of a valid tinker path. */
export interface ParsedTinkerPath {
  /** The input, unchanged. */
  tinkerPath: string;
  /** The training run (model) id; may contain `:`. */
  trainingRunId: string;
  /** `"training"` for `weights`, `"sampler"` for `sampler_weights`. */
  checkpointType: CheckpointType;
  /** The kind segment as written in the path. */
  checkpointKind: CheckpointKind;
  /** The checkpoint name (last segment). */
  checkpointName: string;
  /** `<kind>/<name>`, the id the server uses, e.g. `"weights/ckpt-1"`. */
  checkpointId: string;
}

/**
 * Longest checkpoint name accepted by {@link validateCheckpointName} (the spec's `CheckpointName` rule, which
 * the local server enforces too).
 */
export const MAX_CHECKPOINT_NAME_LENGTH: number = CHECKPOINT_NAME_MAX_LENGTH;

/** Longest name segment {@link parseTinkerPath} accepts in a path it did not make (e.g. one the service returned). */
const MAX_PARSED_NAME_LENGTH = 255;

const CHECKPOINT_NAME_RE = new RegExp(CHECKPOINT_NAME_PATTERN, "u");

const WHITESPACE_OR_CONTROL = /[\s\p{Cc}\p{Cf}]/u;

/** Why a path segment (run id or name) is not acceptable, or `undefined` when it is fine. */
function segmentProblem(segment: string, what: string): string | undefined {
  if (segment === "") return `the ${what} is empty`;
  if (segment === "." || segment === "..") return `the ${what} is "${segment}"`;
  if (WHITESPACE_OR_CONTROL.test(segment)) return `the ${what} contains whitespace or control characters`;
  if (segment.includes("\\")) return `the ${what} contains "\\"`;
  if (segment.includes("?") || segment.includes("#")) return `the ${what} contains "?" or "#"`;
  return undefined;
}

/** Structural problems of a name segment in a tinker path (what would make the path unparseable). */
function pathNameProblem(name: string): string | undefined {
  if (name.includes("/")) return `the name contains "/"`;
  const p = segmentProblem(name, "name");
  if (p !== undefined) return p;
  if (name.length > MAX_PARSED_NAME_LENGTH) return `the name is ${name.length} characters long (at most ${MAX_PARSED_NAME_LENGTH})`;
  return undefined;
}

/** Why `name` breaks the checkpoint-name rule of the spec, or undefined. */
function nameProblem(name: string): string | undefined {
  const structural = pathNameProblem(name);
  if (structural !== undefined && name.length <= MAX_PARSED_NAME_LENGTH) return structural;
  if (name.length < CHECKPOINT_NAME_MIN_LENGTH) return "the name is empty";
  if (name.length > CHECKPOINT_NAME_MAX_LENGTH) return `the name is ${name.length} characters long (at most ${CHECKPOINT_NAME_MAX_LENGTH})`;
  if (CHECKPOINT_NAME_RE.test(name)) return undefined;
  const bad = [...name].find((c) => !/^[A-Za-z0-9._-]$/.test(c));
  return bad !== undefined ? `the name contains ${JSON.stringify(bad)}, which is not allowed` : "the name is not allowed";
}

function isKind(s: string): s is CheckpointKind {
  return s === "weights" || s === "sampler_weights";
}

/**
 * The checkpoint type the server reports for a kind: `weights` → `training`, `sampler_weights` → `sampler`.
 *
 * @example
 * ```ts
 * checkpointTypeOf("sampler_weights"); // "sampler"
 * ```
 */
export function checkpointTypeOf(kind: CheckpointKind): CheckpointType {
  return kind === "weights" ? "training" : "sampler";
}

/**
 * Parses `tinker://<training_run_id>/<weights|sampler_weights>/<name>`.
 *
 * Strict and total: any other input throws. Rejected: a missing or different scheme, fewer or more than three
 * `/`-separated parts, empty parts, `.`/`..` parts, an unknown kind, whitespace or control characters, `\`,
 * a query (`?`) or fragment (`#`), and names longer than 255 characters. Run ids may contain `:`. Names are
 * checked only for what would make the path ambiguous, so paths the service returns always parse; names
 * this SDK creates follow the stricter rule of {@link validateCheckpointName}.
 *
 * @throws {InvalidTinkerPathError} when `input` is not a valid tinker path; the message shows the input and the expected form.
 * @example
 * ```ts
 * const p = parseTinkerPath("tinker://sess-0:train:0/weights/ckpt-1");
 * p.trainingRunId;  // "sess-0:train:0"
 * p.checkpointType; // "training"
 * p.checkpointId;   // "weights/ckpt-1"
 * ```
 */
export function parseTinkerPath(input: string): ParsedTinkerPath {
  if (typeof input !== "string") {
    throw new InvalidTinkerPathError(String(input), `expected a string, got ${input === null ? "null" : typeof input}`);
  }
  if (!input.startsWith(TINKER_PATH_PREFIX)) {
    const reason = /^[a-z][a-z0-9+.-]*:\/\//i.test(input)
      ? `it must start with "${TINKER_PATH_PREFIX}" (scheme is case-sensitive)`
      : `it must start with "${TINKER_PATH_PREFIX}"`;
    throw new InvalidTinkerPathError(input, reason);
  }
  if (input.includes("?")) throw new InvalidTinkerPathError(input, 'it contains a query ("?")');
  if (input.includes("#")) throw new InvalidTinkerPathError(input, 'it contains a fragment ("#")');
  if (WHITESPACE_OR_CONTROL.test(input)) {
    throw new InvalidTinkerPathError(input, "it contains whitespace or control characters");
  }
  const parts = input.slice(TINKER_PATH_PREFIX.length).split("/");
  if (parts.length !== 3) {
    throw new InvalidTinkerPathError(
      input,
      `it has ${parts.length} "/"-separated part${parts.length === 1 ? "" : "s"} after "tinker://", expected 3`,
    );
  }
  const [runId, kind, name] = parts as [string, string, string];
  const runProblem = segmentProblem(runId, "training run id");
  if (runProblem !== undefined) throw new InvalidTinkerPathError(input, runProblem);
  if (!isKind(kind)) {
    throw new InvalidTinkerPathError(input, `the kind ${JSON.stringify(kind)} is not "weights" or "sampler_weights"`);
  }
  const problem = pathNameProblem(name);
  if (problem !== undefined) throw new InvalidTinkerPathError(input, problem);
  return {
    tinkerPath: input,
    trainingRunId: runId,
    checkpointType: checkpointTypeOf(kind),
    checkpointKind: kind,
    checkpointName: name,
    checkpointId: `${kind}/${name}`,
  };
}

/**
 * Returns whether `input` is a valid tinker path (never throws).
 *
 * @example
 * ```ts
 * isTinkerPath("tinker://run-1/weights/a"); // true
 * isTinkerPath("run-1/weights/a");          // false
 * ```
 */
export function isTinkerPath(input: unknown): input is string {
  if (typeof input !== "string") return false;
  try {
    parseTinkerPath(input);
    return true;
  } catch {
    return false;
  }
}

/**
 * Builds `tinker://<runId>/<kind>/<name>`, checking each part.
 *
 * @throws {InvalidTinkerPathError} when the run id is empty, `.`/`..`, or contains `/`, `\`, `?`, `#`, whitespace or control characters, or `kind` is unknown.
 * @throws {InvalidCheckpointNameError} when `name` is not a valid checkpoint name (see {@link validateCheckpointName}).
 * @example
 * ```ts
 * formatTinkerPath("sess-0:train:0", "sampler_weights", "samp-1"); // "tinker://sess-0:train:0/sampler_weights/samp-1"
 * ```
 */
export function formatTinkerPath(runId: string, kind: CheckpointKind, name: string): string {
  const shown = `${TINKER_PATH_PREFIX}${String(runId)}/${String(kind)}/${String(name)}`;
  if (typeof runId !== "string") throw new InvalidTinkerPathError(shown, "the training run id is not a string");
  if (runId.includes("/")) throw new InvalidTinkerPathError(shown, `the training run id contains "/"`);
  const runProblem = segmentProblem(runId, "training run id");
  if (runProblem !== undefined) throw new InvalidTinkerPathError(shown, runProblem);
  if (!isKind(kind)) {
    throw new InvalidTinkerPathError(shown, `the kind ${JSON.stringify(kind)} is not "weights" or "sampler_weights"`);
  }
  validateCheckpointName(name);
  return `${TINKER_PATH_PREFIX}${runId}/${kind}/${name}`;
}

/**
 * Checks a checkpoint name before it is sent to the server, and returns it.
 *
 * Allowed: 1–200 characters of ASCII letters, digits, `.`, `_` and `-`, and not `.` or `..` (the spec's
 * `CheckpointName` rule, `generated/constants.ts`; the local server enforces the same rule and answers 400).
 *
 * @throws {InvalidCheckpointNameError} saying what is wrong and what is allowed.
 * @example
 * ```ts
 * validateCheckpointName("step-0100"); // "step-0100"
 * validateCheckpointName("a/b");       // throws InvalidCheckpointNameError
 * ```
 */
export function validateCheckpointName(name: string): string {
  if (typeof name !== "string") {
    throw new InvalidCheckpointNameError(String(name), `expected a string, got ${name === null ? "null" : typeof name}`);
  }
  const problem = nameProblem(name);
  if (problem !== undefined) throw new InvalidCheckpointNameError(name, problem);
  return name;
}

/**
 * Splits a checkpoint id (`"weights/<name>"` or `"sampler_weights/<name>"`) into kind and name.
 *
 * @throws {TinkerError} when `checkpointId` is not `<weights|sampler_weights>/<valid name>`.
 * @example
 * ```ts
 * splitCheckpointId("weights/ckpt-1"); // { kind: "weights", name: "ckpt-1" }
 * ```
 */
export function splitCheckpointId(checkpointId: string): { kind: CheckpointKind; name: string } {
  const slash = typeof checkpointId === "string" ? checkpointId.indexOf("/") : -1;
  const kind = slash < 0 ? "" : checkpointId.slice(0, slash);
  const name = slash < 0 ? "" : checkpointId.slice(slash + 1);
  const problem = !isKind(kind) ? `it must start with "weights/" or "sampler_weights/"` : nameProblem(name);
  if (problem !== undefined) {
    throw new TinkerError(
      `Invalid checkpoint id ${JSON.stringify(checkpointId)}: ${problem}. Expected "<weights|sampler_weights>/<name>", e.g. "weights/ckpt-0001".`,
    );
  }
  return { kind: kind as CheckpointKind, name };
}

/** The expected form of a tinker path, quoted in messages. */
export const TINKER_PATH_FORM = "tinker://<training_run_id>/<weights|sampler_weights>/<name>";

/**
 * A string is not a valid `tinker://<training_run_id>/<weights|sampler_weights>/<name>` path.
 *
 * @example
 * ```ts
 * try {
 *   parseTinkerPath("weights/ckpt-1");
 * } catch (err) {
 *   if (err instanceof InvalidTinkerPathError) console.error(err.input, err.reason);
 *   else throw err;
 * }
 * ```
 */
export class InvalidTinkerPathError extends InvalidArgumentError {
  override name: string = "InvalidTinkerPathError";
  /** The offending input, unchanged. */
  readonly input: string;
  /** Why it was rejected. */
  readonly reason: string;

  /** Builds the error; the message shows the input (escaped) and the expected form. */
  constructor(input: string, reason: string) {
    super(`Invalid tinker path ${quote(input)}: ${reason}. Expected ${TINKER_PATH_FORM}, e.g. tinker://run-123/weights/ckpt-0001.`);
    this.input = input;
    this.reason = reason;
  }
}

/**
 * A checkpoint name is not allowed (empty, too long, contains `/`, `\`, control characters, ...).
 *
 * @example
 * ```ts
 * try {
 *   training.saveState("a/b");
 * } catch (err) {
 *   if (err instanceof InvalidCheckpointNameError) console.error(err.checkpointName, err.reason);
 *   else throw err;
 * }
 * ```
 */
export class InvalidCheckpointNameError extends InvalidArgumentError {
  override name: string = "InvalidCheckpointNameError";
  /** The offending name, unchanged. */
  readonly checkpointName: string;
  /** Why it was rejected. */
  readonly reason: string;

  /** Builds the error; the message says what names are allowed. */
  constructor(checkpointName: string, reason: string) {
    super(`Invalid checkpoint name ${quote(checkpointName)}: ${reason}. A name is ${CHECKPOINT_NAME_RULE} (e.g. "ckpt-0001").`);
    this.checkpointName = checkpointName;
    this.reason = reason;
  }
}
