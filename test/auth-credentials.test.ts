/**
 * Credentials (PROTOCOL §10.5, decision 15): TINKER_CREDENTIAL_CMD, credential_default_source, key prefixes.
 * Against the local server in JWT mode, with a second user whose key only the command prints.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigurationError, RestClient, ServiceClient, startLocalServer } from "../src/index.js";

const CMD_USER_KEY = "tml-credential-cmd-user";

test("without an API key, TINKER_CREDENTIAL_CMD supplies the credential that is exchanged for the JWT", async () => {
  await using server = await startLocalServer({ clientConfig: { pjwt_auth_enabled: true }, extraApiKeys: [CMD_USER_KEY] });
  const rest = RestClient.fromEnv({ baseUrl: server.baseUrl }, { TINKER_CREDENTIAL_CMD: `printf '%s\\n' ${CMD_USER_KEY}` });
  const me = await rest.whoami();
  const primary = await RestClient.fromEnv({ baseUrl: server.baseUrl, apiKey: server.apiKey }, {}).whoami();
  assert.notEqual(me.user_urn, primary.user_urn, "the command's user, not the primary key's");
  const sent = server.requests.filter((r) => r.path === "/api/v1/auth/token").map((r) => r.headers["x-api-key"]);
  assert.ok(sent.includes(CMD_USER_KEY));
  assert.ok(Array.isArray((await rest.listSessions()).sessions));
});

test("credential_default_source: credential_cmd exchanges what the command prints even when a tml- key is set", async () => {
  await using server = await startLocalServer({
    clientConfig: { pjwt_auth_enabled: true, credential_default_source: "credential_cmd" },
    extraApiKeys: [CMD_USER_KEY],
  });
  const env = { TINKER_CREDENTIAL_CMD: `echo ${CMD_USER_KEY}` };
  const rest = RestClient.fromEnv({ baseUrl: server.baseUrl, apiKey: server.apiKey }, env);
  assert.ok(Array.isArray((await rest.listSessions()).sessions));
  const exchanged = server.requests.filter((r) => r.path === "/api/v1/auth/token").map((r) => r.headers["x-api-key"]);
  assert.deepEqual(exchanged, [CMD_USER_KEY]);
  // The config is still read with the key; without a command this deployment asks for one.
  assert.equal(server.requests.find((r) => r.path === "/api/v1/client/config")?.headers["x-api-key"], server.apiKey);
  await using other = await startLocalServer({ clientConfig: { pjwt_auth_enabled: true, credential_default_source: "credential_cmd" } });
  const needsCmd = RestClient.fromEnv({ baseUrl: other.baseUrl, apiKey: other.apiKey }, {});
  await assert.rejects(
    needsCmd.listSessions(),
    (err: unknown) => err instanceof ConfigurationError && /TINKER_CREDENTIAL_CMD/.test(err.message),
  );
});

test("a command that prints nothing is a ConfigurationError; a non-zero exit with output is used, with a warning naming only the code", async () => {
  await using server = await startLocalServer({ clientConfig: { pjwt_auth_enabled: true }, extraApiKeys: [CMD_USER_KEY] });
  const empty = RestClient.fromEnv({ baseUrl: server.baseUrl }, { TINKER_CREDENTIAL_CMD: "true" });
  await assert.rejects(
    empty.listSessions(),
    (err: unknown) => err instanceof ConfigurationError && /printed no credential/.test(err.message),
  );

  const saved = process.env["TINKER_CREDENTIAL_CMD"];
  const savedKey = process.env["TINKER_API_KEY"];
  process.env["TINKER_CREDENTIAL_CMD"] = `echo ${CMD_USER_KEY}; exit 3`;
  delete process.env["TINKER_API_KEY"];
  const warnings: string[] = [];
  try {
    await using service = new ServiceClient({ baseUrl: server.baseUrl, logger: { warn: (m) => warnings.push(m) } });
    const caps = await service.getServerCapabilities();
    assert.ok(caps.supported_models.length > 0);
  } finally {
    if (saved === undefined) delete process.env["TINKER_CREDENTIAL_CMD"];
    else process.env["TINKER_CREDENTIAL_CMD"] = saved;
    if (savedKey !== undefined) process.env["TINKER_API_KEY"] = savedKey;
  }
  assert.ok(
    warnings.some((w) => /exited with code 3/.test(w)),
    warnings.join("\n"),
  );
  assert.ok(
    warnings.every((w) => !w.includes(CMD_USER_KEY)),
    "the output is never logged",
  );
});

test("without JWT mode a command alone is not enough, and keys must start with tml- or eyJ", async () => {
  await using server = await startLocalServer();
  const rest = RestClient.fromEnv({ baseUrl: server.baseUrl }, { TINKER_CREDENTIAL_CMD: `echo ${server.apiKey}` });
  await assert.rejects(rest.listSessions(), (err: unknown) => err instanceof ConfigurationError && /TINKER_API_KEY/.test(err.message));
  assert.throws(
    () => RestClient.fromEnv({ baseUrl: server.baseUrl, apiKey: "sk-abc123" }, {}),
    (err: unknown) => err instanceof ConfigurationError && /tml-/.test(err.message) && !err.message.includes("sk-abc123"),
  );
  assert.throws(() => new ServiceClient({ baseUrl: server.baseUrl, apiKey: "sk-abc123" }), ConfigurationError);
});
