// CI: MCP tasks against `tutti serve` (stdio) with the official TypeScript clients:
//  - 2025-11-25 core tasks, @modelcontextprotocol/sdk's client (client.experimental.tasks):
//    workflow_start as a task, polled to input_required, its client step reported with
//    step_complete, the result from tasks/result; tasks/list and tasks/cancel;
//  - 2026-07-28, the io.modelcontextprotocol/tasks extension, @modelcontextprotocol/client
//    (the SDK's next client) with @modelcontextprotocol/ext-tasks: workflow_start answered
//    with a task, polled, its client step and approval gate answered as input requests
//    (tasks/update), the result taken from the completed task.
//
// Run by .ci/tasks-client-check from the temporary directory the packages were installed in:
//   node check.mjs ROOT LOGDIR UV...   (UV: the command line that runs uv)
// TUTTI_DB comes from the environment; every other TUTTI_ and ANTHROPIC_ variable is dropped.
import { openSync } from "node:fs";
import { join } from "node:path";

import { Client as LegacyClient } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport as LegacyStdio } from "@modelcontextprotocol/sdk/client/stdio.js";
import { Client } from "@modelcontextprotocol/client";
import { StdioClientTransport } from "@modelcontextprotocol/client/stdio";
import {
  createApplicationInputHandler,
  createTaskSessionFromClient,
  resultFromTaskOutcome,
} from "@modelcontextprotocol/ext-tasks/client";

const [ROOT, LOGDIR, ...UV] = process.argv.slice(2);
if (!ROOT || !LOGDIR || UV.length === 0 || !process.env.TUTTI_DB) {
  console.error("usage: TUTTI_DB=... node check.mjs ROOT LOGDIR UV...");
  process.exit(2);
}
const CONNECT_S = 60; // the first `uv run` may still have to sync the environment
const CALL_S = 30;
const TOTAL_S = 240; // the whole check, whatever hangs

let last; // the last answer, shown when a check fails
function fail(message) {
  console.error(`tasks-client-check: FAILED: ${message}`);
  if (last !== undefined) console.error(`last answer: ${JSON.stringify(last, null, 2)}`);
  process.exit(1); // the servers see their stdin close and exit
}
function expect(condition, message) {
  if (!condition) fail(message);
}
setTimeout(() => fail(`the check did not finish within ${TOTAL_S} s`), TOTAL_S * 1000).unref();

function serverParams(name) {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => !k.startsWith("TUTTI_") && !k.startsWith("ANTHROPIC_"),
    ),
  );
  env.TUTTI_DB = process.env.TUTTI_DB;
  env.TUTTI_TASK_POLL_MS = "100"; // the suggested polling interval: a quick check
  return {
    command: UV[0],
    args: [...UV.slice(1), "--directory", ROOT, "run", "tutti", "serve"],
    env,
    stderr: openSync(join(LOGDIR, `${name}.log`), "w"),
  };
}

const ONE_STEP = {
  name: "tasks-check",
  steps: [
    { id: "ask", prompt: "Name one prime.", run: "client" },
    { id: "confirm", depends_on: ["ask"], approve: "Keep ${ask.output}?" },
    { id: "done", depends_on: ["confirm"], op: "template", args: "kept ${ask.output}" },
  ],
};
const CLIENT_STEP = {
  name: "tasks-check-legacy",
  steps: [
    { id: "ask", prompt: "Name one prime.", run: "client" },
    { id: "done", depends_on: ["ask"], op: "template", args: "prime ${ask.output}" },
  ],
};

// -- 2025-11-25: @modelcontextprotocol/sdk --------------------------------------------------
async function legacy() {
  const client = new LegacyClient({ name: "tutti-tasks-ci-legacy", version: "1.0.0" });
  try {
    await client.connect(new LegacyStdio(serverParams("legacy")), { timeout: CONNECT_S * 1000 });
  } catch (err) {
    fail(`legacy: could not connect to \`uv run tutti serve\` (see legacy.log): ${err.message}`);
  }
  const caps = client.getServerCapabilities();
  expect(caps?.tasks?.requests?.tools?.call, "legacy: the server does not offer task tool calls");
  const { tools } = await client.listTools();
  const start = tools.find((t) => t.name === "workflow_start");
  expect(start?.execution?.taskSupport === "optional", "legacy: workflow_start taskSupport");

  const seen = [];
  let taskId;
  let result;
  const stream = client.experimental.tasks.callToolStream(
    { name: "workflow_start", arguments: { spec: CLIENT_STEP } },
    undefined,
    { task: { ttl: 600000 }, timeout: CALL_S * 1000 },
  );
  for await (const message of stream) {
    last = message;
    if (message.type === "taskCreated") taskId = message.task.taskId;
    if (message.type === "taskStatus") {
      seen.push(message.task.status);
      if (message.task.status === "input_required" && !seen.includes("answered")) {
        // 2025-11-25 has no tasks/update: the model answers a client step with step_complete
        const runId = message.task.statusMessage.match(/step_complete\('([^']+)'/)?.[1];
        expect(runId, "legacy: input_required does not say how to report the step");
        last = await client.callTool({
          name: "step_complete",
          arguments: { run_id: runId, step_id: "ask", output: "7" },
        });
        expect(!last.isError, "legacy: step_complete failed");
        seen.push("answered");
      }
    }
    if (message.type === "result") result = message.result;
    if (message.type === "error") fail(`legacy: the task failed: ${message.error.message}`);
  }
  expect(taskId, "legacy: no task was created");
  expect(seen.includes("input_required"), `legacy: never input_required (${seen})`);
  expect(result?.structuredContent?.outputs?.done === "prime 7", "legacy: wrong result");
  const listed = await client.experimental.tasks.listTasks();
  expect(listed.tasks.some((t) => t.taskId === taskId), "legacy: tasks/list lacks the task");

  // cancel: a task whose run waits on a client step
  const created = await client.request(
    {
      method: "tools/call",
      params: { name: "workflow_start", arguments: { spec: CLIENT_STEP }, task: {} },
    },
    (await import("@modelcontextprotocol/sdk/experimental/tasks/types.js")).CreateTaskResultSchema,
  );
  last = await client.experimental.tasks.cancelTask(created.task.taskId);
  expect(last.status === "cancelled", "legacy: tasks/cancel did not cancel");
  await client.close();
  console.log(`tasks-client-check: 2025-11-25 ok (statuses: ${seen.join(", ")})`);
}

// -- 2026-07-28: @modelcontextprotocol/client + @modelcontextprotocol/ext-tasks ---------------
/**
 * Raw JSON-RPC over the client's own transport, for what the client cannot decode: its
 * 2026-07-28 result decoder refuses `resultType: "task"`, so ext-tasks takes task-shaped
 * requests (tools/call, tasks/*) through a host dispatcher. Responses to these requests are
 * taken off the transport before the client sees them.
 */
function rawDispatcher(transport) {
  const pending = new Map();
  let next = 0;
  const deliver = transport.onmessage;
  transport.onmessage = (message, extra) => {
    const waiter = message.id !== undefined ? pending.get(message.id) : undefined;
    if (waiter === undefined) return deliver?.call(transport, message, extra);
    pending.delete(message.id);
    waiter(message);
  };
  return async (request, options = {}) => {
    const id = `tasks-check-${++next}`;
    const answer = new Promise((resolve, reject) => {
      pending.set(id, resolve);
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`${request.method}: no answer within ${CALL_S} s`));
      }, CALL_S * 1000);
      timer.unref();
      options.signal?.addEventListener("abort", () => reject(options.signal.reason));
    });
    await transport.send({ jsonrpc: "2.0", id, method: request.method, params: request.params });
    const message = await answer;
    last = message;
    return message.error !== undefined
      ? { kind: "error", error: message.error }
      : { kind: "result", result: message.result };
  };
}

async function modern() {
  const info = { name: "tutti-tasks-ci-modern", version: "1.0.0" };
  const capabilities = { elicitation: { form: {} } };
  const client = new Client(info, { capabilities, versionNegotiation: { mode: "auto" } });
  const transport = new StdioClientTransport(serverParams("modern"));
  try {
    await client.connect(transport, { timeout: CONNECT_S * 1000 });
  } catch (err) {
    fail(`modern: could not connect to \`uv run tutti serve\` (see modern.log): ${err.message}`);
  }
  expect(client.getProtocolEra() === "modern", `modern: negotiated ${client.getProtocolEra()}`);
  const version = client.getNegotiatedProtocolVersion?.() ?? "2026-07-28";
  const asked = [];
  const session = createTaskSessionFromClient(client, {
    endpointId: "tutti-ci",
    rawDispatch: rawDispatcher(transport),
    v2RequestFraming: { protocolVersion: version, clientInfo: info, clientCapabilities: capabilities },
    onInputRequest: createApplicationInputHandler({
      elicitation: async (request) => {
        const props = request.params.requestedSchema?.properties ?? {};
        asked.push(props.approve ? "gate" : "step");
        if (props.approve) return { action: "accept", content: { approve: true, note: "ci" } };
        return { action: "accept", content: { output: "11" } };
      },
      sampling: async () => fail("modern: unexpected sampling request"),
      roots: async () => ({ roots: [] }),
    }),
  });
  const statuses = [];
  const execution = await session.callTool("workflow_start", { spec: ONE_STEP });
  expect(execution.kind === "task", `modern: workflow_start was not a task (${execution.kind})`);
  const { outcome } = await execution.settle({
    onEvent: (event) => {
      last = event;
      if (event.type === "task") statuses.push(event.task.status);
    },
  });
  last = outcome.status === "failed" ? { error: `${outcome.error}`, cause: `${outcome.error.cause}` } : outcome;
  expect(outcome.status === "completed", `modern: the task ended ${outcome.status}`);
  const result = resultFromTaskOutcome(outcome);
  expect(result.structuredContent?.outputs?.done === "kept 11", "modern: wrong result");
  expect(asked.join(",") === "step,gate", `modern: input requests were ${asked}`);
  expect(statuses.includes("input_required"), `modern: never input_required (${statuses})`);
  await session.close();
  await client.close();
  console.log(`tasks-client-check: 2026-07-28 ok (statuses: ${[...new Set(statuses)].join(", ")})`);
}

await legacy();
await modern();
process.exit(0);
