import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InvalidCheckpointNameError, InvalidTinkerPathError } from "../src/core/tinker-path.js";
import { TinkerError } from "../src/core/errors.js";
import { formatTinkerPath, isTinkerPath, parseTinkerPath, splitCheckpointId, validateCheckpointName } from "../src/core/tinker-path.js";

describe("parseTinkerPath: valid paths", () => {
  it("parses a training checkpoint path", () => {
    assert.deepEqual(parseTinkerPath("tinker://run-id/weights/0001"), {
      tinkerPath: "tinker://run-id/weights/0001",
      trainingRunId: "run-id",
      checkpointType: "training",
      checkpointKind: "weights",
      checkpointName: "0001",
      checkpointId: "weights/0001",
    });
  });

  it("parses a sampler checkpoint path", () => {
    const p = parseTinkerPath("tinker://run-id/sampler_weights/samp-1");
    assert.equal(p.checkpointType, "sampler");
    assert.equal(p.checkpointKind, "sampler_weights");
    assert.equal(p.checkpointId, "sampler_weights/samp-1");
    assert.equal(p.checkpointName, "samp-1");
  });

  it("keeps run ids containing ':' intact", () => {
    const p = parseTinkerPath("tinker://sess-0:train:0/weights/ckpt-1");
    assert.equal(p.trainingRunId, "sess-0:train:0");
    assert.equal(p.checkpointId, "weights/ckpt-1");
  });

  it("accepts names with dots, dashes, underscores, unicode and %", () => {
    for (const name of ["step.0100", "a..b", ".hidden", "final_v2", "épocha-3", "50%"]) {
      assert.equal(parseTinkerPath(`tinker://r/weights/${name}`).checkpointName, name);
    }
  });

  it("accepts a 255-character name", () => {
    const name = "n".repeat(255);
    assert.equal(parseTinkerPath(`tinker://r/weights/${name}`).checkpointName, name);
  });

  it("round-trips with formatTinkerPath", () => {
    const s = formatTinkerPath("sess-0:train:3", "sampler_weights", "samp-1");
    assert.equal(s, "tinker://sess-0:train:3/sampler_weights/samp-1");
    const p = parseTinkerPath(s);
    assert.equal(formatTinkerPath(p.trainingRunId, p.checkpointKind, p.checkpointName), s);
  });
});

describe("parseTinkerPath: invalid paths", () => {
  const invalid: Array<[string, RegExp]> = [
    ["", /must start with "tinker:\/\/"/],
    ["run-id/weights/0001", /must start with/],
    ["TINKER://run-id/weights/0001", /case-sensitive/],
    ["tinker:/run-id/weights/0001", /must start with/],
    ["https://run-id/weights/0001", /must start with/],
    [" tinker://run-id/weights/0001", /must start with/],
    ["tinker://", /1 "\/"-separated part/],
    ["tinker://run-id", /1 "\/"-separated part/],
    ["tinker://run-id/weights", /2 "\/"-separated parts/],
    ["tinker://run-id/weights/a/b", /4 "\/"-separated parts/],
    ["tinker://run-id/weights/0001/", /4 "\/"-separated parts/],
    ["tinker:///weights/0001", /training run id is empty/],
    ["tinker://run-id//0001", /kind "" is not/],
    ["tinker://run-id/weights/", /name is empty/],
    ["tinker://run-id/checkpoints/0001", /kind "checkpoints" is not/],
    ["tinker://run-id/Weights/0001", /kind "Weights" is not/],
    ["tinker://run-id/sampler/0001", /kind "sampler" is not/],
    ["tinker://run-id/weights/..", /name is "\.\."/],
    ["tinker://run-id/weights/.", /name is "\."/],
    ["tinker://../weights/0001", /training run id is "\.\."/],
    ["tinker://./weights/0001", /training run id is "\."/],
    ["tinker://run-id/weights/00 01", /whitespace or control/],
    ["tinker://run-id/weights/0001 ", /whitespace or control/],
    ["tinker://run-id/weights/0001\n", /whitespace or control/],
    ["tinker://run-id/weights/00\u000001", /whitespace or control/],
    ["tinker://run-id/weights/00\t01", /whitespace or control/],
    ["tinker://run-id/weights/00\u200b01", /whitespace or control/],
    ["tinker://run\u007f/weights/0001", /whitespace or control/],
    ["tinker://run-id/weights/0001?x=1", /query/],
    ["tinker://run-id/weights/0001#frag", /fragment/],
    ["tinker://run-id/weights/a\\b", /"\\"/],
    ["tinker://run\\id/weights/a", /"\\"/],
    [`tinker://r/weights/${"n".repeat(256)}`, /256 characters long/],
  ];

  for (const [input, reason] of invalid) {
    it(`rejects ${JSON.stringify(input).slice(0, 60)}`, () => {
      assert.throws(
        () => parseTinkerPath(input),
        (err: unknown) => {
          assert.ok(err instanceof InvalidTinkerPathError, `expected InvalidTinkerPathError, got ${String(err)}`);
          assert.ok(err instanceof TinkerError);
          assert.equal(err.name, "InvalidTinkerPathError");
          assert.equal(err.input, input);
          assert.match(err.reason, reason);
          assert.match(err.message, /tinker:\/\/<training_run_id>\/<weights\|sampler_weights>\/<name>/);
          assert.ok(err.message.includes(JSON.stringify(input).slice(0, 100)), err.message);
          return true;
        },
      );
      assert.equal(isTinkerPath(input), false);
    });
  }

  it("rejects non-strings at runtime", () => {
    for (const bad of [undefined, null, 42, {}]) {
      assert.throws(() => parseTinkerPath(bad as unknown as string), InvalidTinkerPathError);
      assert.equal(isTinkerPath(bad), false);
    }
  });

  it("shows control characters escaped in the message", () => {
    assert.throws(
      () => parseTinkerPath("tinker://r/weights/a\nb"),
      (err: unknown) => {
        assert.ok(err instanceof InvalidTinkerPathError);
        assert.ok(err.message.includes(String.raw`"tinker://r/weights/a\nb"`), err.message);
        assert.ok(!err.message.includes("a\nb"));
        return true;
      },
    );
  });
});

describe("formatTinkerPath", () => {
  it("rejects a bad run id with InvalidTinkerPathError", () => {
    for (const runId of ["", "a/b", "..", "a b", "a?b", "a#b"]) {
      assert.throws(() => formatTinkerPath(runId, "weights", "x"), InvalidTinkerPathError);
    }
  });

  it("rejects an unknown kind", () => {
    assert.throws(() => formatTinkerPath("r", "checkpoints" as "weights", "x"), InvalidTinkerPathError);
  });

  it("rejects a bad name with InvalidCheckpointNameError", () => {
    assert.throws(() => formatTinkerPath("r", "weights", "a/b"), InvalidCheckpointNameError);
  });
});

describe("validateCheckpointName", () => {
  it("returns valid names unchanged", () => {
    for (const name of ["ckpt-1", "step_0100", "v1.2", "a..b", ".hidden", "...", "A-z_0.9", "n".repeat(200), `a${".".repeat(199)}`]) {
      assert.equal(validateCheckpointName(name), name);
    }
  });

  const invalid: Array<[string, RegExp]> = [
    ["", /empty/],
    [".", /is "\."/],
    ["..", /is "\.\."/],
    ["a/b", /contains "\/"/],
    ["/abs", /contains "\/"/],
    ["a\\b", /contains "\\"/],
    [" lead", /whitespace/],
    ["trail ", /whitespace/],
    ["in side", /whitespace/],
    ["tab\there", /whitespace/],
    ["nul\u0000", /control/],
    ["bell\u0007", /control/],
    ["del\u007f", /control/],
    ["q?x", /"\?" or "#"/],
    ["h#x", /"\?" or "#"/],
    ["n".repeat(201), /at most 200/],
    ["n".repeat(256), /at most 200/],
    ["é", /"é"/],
    ["épocha-3", /"é"/],
    ["a:b", /":"/],
    ["50%", /"%"/],
    ["a+b", /"\+"/],
    ["a@b", /"@"/],
  ];
  for (const [name, reason] of invalid) {
    it(`rejects ${JSON.stringify(name).slice(0, 40)}`, () => {
      assert.throws(
        () => validateCheckpointName(name),
        (err: unknown) => {
          assert.ok(err instanceof InvalidCheckpointNameError);
          assert.equal(err.name, "InvalidCheckpointNameError");
          assert.equal(err.checkpointName, name);
          assert.match(err.reason, reason);
          assert.match(err.message, /1-200 characters of ASCII letters, digits, "\.", "_" and "-"/);
          return true;
        },
      );
    });
  }

  it("rejects non-strings at runtime", () => {
    assert.throws(() => validateCheckpointName(undefined as unknown as string), InvalidCheckpointNameError);
  });
});

describe("splitCheckpointId", () => {
  it("splits weights and sampler_weights ids", () => {
    assert.deepEqual(splitCheckpointId("weights/ckpt-1"), { kind: "weights", name: "ckpt-1" });
    assert.deepEqual(splitCheckpointId("sampler_weights/s"), { kind: "sampler_weights", name: "s" });
  });

  it("rejects malformed ids", () => {
    for (const id of ["ckpt-1", "weights/", "weights/a/b", "other/a", "/a", "weights/.."]) {
      assert.throws(() => splitCheckpointId(id), TinkerError);
    }
  });
});
