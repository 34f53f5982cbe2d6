/**
 * The REST calls of PROTOCOL §3 rows 28, 29, 35, 36 against the local server, with real data from its store:
 * session projects (and projectId on the run listing), trace export (polled, abortable), the audit log of
 * checkpoint events, and billing usage counting the tokens trained.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { APIUserAbortError, InvalidArgumentError, NotFoundError, ServiceClient, startLocalServer } from "../src/index.js";
import { BASE_MODEL, trainSteps } from "./helpers/training.js";

test("project, trace, audit and billing from what the server saw", async () => {
  await using server = await startLocalServer();
  await using service = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey });
  const rest = service.createRestClient();
  const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
  await trainSteps(training, 0, 2); // 2 steps × 4 sequences × 11 input tokens (12 tokens, next-token shifted)
  const kept = await training.saveState("kept");
  const gone = await training.saveState("gone");
  await rest.publishCheckpointFromTinkerPath(kept.path);
  await rest.deleteCheckpointFromTinkerPath(gone.path);
  const [sessionId] = (await rest.listSessions()).sessions;
  assert.ok(sessionId !== undefined);

  // Project: the run is listed under its session's new project only.
  await rest.assignSessionProject(sessionId, "proj-research");
  assert.deepEqual(
    (await rest.listTrainingRuns({ projectId: "proj-research" })).training_runs.map((r) => r.training_run_id),
    [training.modelId],
  );
  assert.equal((await rest.listTrainingRuns({ projectId: "proj-other" })).training_runs.length, 0);
  await assert.rejects(rest.assignSessionProject("sess-missing", "proj-x"), NotFoundError);
  await assert.rejects(rest.assignSessionProject(sessionId, " "), InvalidArgumentError);

  // Audit log: the checkpoint events of today, in time order; another day is empty.
  const { entries } = await rest.getAuditLog({ eventType: "checkpoints" });
  const byEvent = (e: string) => entries.filter((x) => x.event === e).map((x) => x.tinker_path);
  assert.deepEqual(byEvent("checkpoint_saved"), [kept.path]); // the deleted one is no longer stored
  assert.deepEqual(byEvent("checkpoint_published"), [kept.path]);
  assert.deepEqual(byEvent("checkpoint_deleted"), [gone.path]);
  assert.ok(entries.every((e, i) => i === 0 || e.timestamp >= entries[i - 1]!.timestamp));
  assert.deepEqual((await rest.getAuditLog({ day: "2001-01-01" })).entries, []);
  await assert.rejects(rest.getAuditLog({ day: "15/01/2026" }), InvalidArgumentError);

  // Billing: the tokens trained in this hour, attributed to the session and its project.
  const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000;
  const usage = await rest.getBillingUsage({ startingOn: new Date(hour), endingBefore: new Date(hour + 3_600_000) });
  const trainedEvents = usage.data.filter((e) => e.event_info.type === "training");
  assert.equal(
    trainedEvents.reduce((n, e) => n + (e.event_info.token_count ?? 0), 0),
    2 * 4 * 11,
  );
  assert.equal(trainedEvents[0]?.session_id, sessionId);
  assert.equal(trainedEvents[0]?.project_id, "proj-research");
  assert.equal(trainedEvents[0]?.base_model, BASE_MODEL);
  assert.ok(usage.data.some((e) => e.event_info.type === "checkpoint" && e.event_info.count === 1));
  await assert.rejects(
    rest.getBillingUsage({ startingOn: "2026-01-15T10:30:00Z", endingBefore: "2026-01-15T12:00:00Z" }),
    InvalidArgumentError,
  );

  // Trace export: pending first, then a URL whose trace names the run.
  let pending = 0;
  const url = await rest.exportSessionTrace(sessionId, { pollIntervalMs: 10, onPending: () => pending++ });
  assert.equal(pending, 1);
  const trace = (await (await fetch(url)).json()) as { traceEvents: { name: string }[] };
  assert.ok(trace.traceEvents.some((e) => e.name === training.modelId));
  assert.ok(trace.traceEvents.some((e) => e.name === "save weights/kept"));
});

test("exportSessionTrace stops waiting when aborted", async () => {
  await using server = await startLocalServer();
  await using service = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey });
  await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4 });
  const rest = service.createRestClient();
  const [sessionId] = (await rest.listSessions()).sessions;
  const started = Date.now();
  await assert.rejects(
    rest.exportSessionTrace(sessionId!, { pollIntervalMs: 60_000, signal: AbortSignal.timeout(100) }),
    APIUserAbortError,
  );
  assert.ok(Date.now() - started < 10_000);
});
