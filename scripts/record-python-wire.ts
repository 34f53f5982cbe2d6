/**
 * Records the official Python SDK's protobuf forward/forward_backward wire against the tinker-ts local server,
 * into test/fixtures/python-wire/ (run once by hand; CI only replays the files, without Python).
 *
 *   PYTHON_SDK_PATH=/path/to/tinker/src:/path/to/site-packages npx tsx scripts/record-python-wire.ts
 *
 * For each mode (`plain`; `zstd` = client config `proto_compress_fwdbwd: true`) it starts a local server with that
 * client config, runs scripts/python-wire/record.py with the SDK (TINKER_BASE_URL/TINKER_API_KEY pointing at the
 * server), then writes per forward/forward_backward call: the request body exactly as sent (`NN.request.bin`,
 * zstd-compressed in the zstd mode), the protobuf result the server answered to the SDK's protobuf poll
 * (`NN.result.bin`), and `manifest.json` (headers of the submit and of the polls, seq ids), plus `python.json`
 * (the datums the SDK sent and the results it decoded).
 */
import { spawn } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { startLocalServer } from "../src/server/index.js";

const root = new URL("../", import.meta.url);
const outRoot = new URL("test/fixtures/python-wire/", root);
const pythonPath = process.env["PYTHON_SDK_PATH"] ?? "/tmp/tinker-python-peer/src:/tmp/tinker-python-peer/site";

const MODES = [
  { name: "plain", clientConfig: {} },
  { name: "zstd", clientConfig: { proto_compress_fwdbwd: true } },
] as const;

function header(h: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v.join(", ") : v;
}

async function record(mode: (typeof MODES)[number]): Promise<void> {
  const dir = new URL(`${mode.name}/`, outRoot);
  await mkdir(dir, { recursive: true });
  const server = await startLocalServer({ port: 0, clientConfig: mode.clientConfig });
  try {
    const pyOut = fileURLToPath(new URL("python.json", dir));
    await new Promise<void>((resolve, reject) => {
      const child = spawn("python3", [fileURLToPath(new URL("scripts/python-wire/record.py", root)), pyOut], {
        env: {
          ...process.env,
          PYTHONPATH: pythonPath,
          TINKER_BASE_URL: server.baseUrl,
          TINKER_API_KEY: server.apiKey,
          TINKER_TELEMETRY: "0",
        },
        stdio: ["ignore", "inherit", "inherit"],
      });
      child.on("error", reject);
      child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`record.py exited with ${code}`))));
    });
    const submits = server.requests.filter((r) => r.method === "POST" && r.path === "/api/v1/forward_backward");
    const pollIds: string[] = [];
    const pollHeaders = new Map<string, Record<string, string | undefined>>();
    for (const r of server.requests) {
      if (r.path !== "/api/v1/retrieve_future") continue;
      const type = header(r.headers, "x-tinker-request-type");
      if (type !== "ForwardBackward" && type !== "Forward") continue;
      const id = (r.body as { request_id: string }).request_id;
      if (!pollHeaders.has(id)) {
        pollIds.push(id);
        pollHeaders.set(id, { accept: header(r.headers, "accept"), "x-tinker-request-type": type });
      }
    }
    if (submits.length !== pollIds.length) throw new Error(`${submits.length} submits but ${pollIds.length} polled futures`);
    const calls = [];
    for (const [i, r] of submits.entries()) {
      if (r.raw === undefined) throw new Error(`submit ${i} has no raw protobuf body (content-type ${header(r.headers, "content-type")})`);
      const id = pollIds[i]!;
      const res = await fetch(`${server.baseUrl}/api/v1/retrieve_future`, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/x-protobuf", "x-api-key": server.apiKey },
        body: JSON.stringify({ request_id: id, allow_metadata_only: true }),
      });
      if (!(res.headers.get("content-type") ?? "").includes("application/x-protobuf")) throw new Error(`result ${id} is not protobuf`);
      const name = String(i + 1).padStart(2, "0");
      await writeFile(new URL(`${name}.request.bin`, dir), r.raw);
      await writeFile(new URL(`${name}.result.bin`, dir), new Uint8Array(await res.arrayBuffer()));
      const body = r.body as { seq_id?: number; forward_only?: boolean };
      calls.push({
        request: `${name}.request.bin`,
        result: `${name}.result.bin`,
        seq_id: body.seq_id,
        forward_only: body.forward_only,
        submit_headers: {
          "content-type": header(r.headers, "content-type"),
          "content-encoding": header(r.headers, "content-encoding"),
          accept: header(r.headers, "accept"),
          "user-agent": header(r.headers, "user-agent"),
        },
        poll_headers: pollHeaders.get(id),
      });
    }
    const manifest = { mode: mode.name, client_config: mode.clientConfig, recorded_at: new Date().toISOString(), calls };
    await writeFile(new URL("manifest.json", dir), `${JSON.stringify(manifest, null, 1)}\n`);
    console.log(`${mode.name}: ${calls.length} calls recorded in ${fileURLToPath(dir)}`);
  } finally {
    await server.close();
  }
}

for (const mode of MODES) await record(mode);
