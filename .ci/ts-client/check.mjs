// CI: drive `tutti serve` over stdio with the official TypeScript MCP SDK, as a new user's
// client would: list the tools, plan a bad spec, run a foreach of client steps to the end,
// run the seed's swarm with the client doing each agent's turn,
// answer an approval gate by elicitation, and the same gate as a client task from a client
// without elicitation. The SDK validates every structured answer against the tool's output
// schema (after listTools), so a schema it cannot use fails here too.
//
// Run by .ci/ts-client-check from the temporary directory the SDK was installed into:
//   node check.mjs ROOT LOGDIR UV...   (UV: the command line that runs uv)
// TUTTI_DB comes from the environment; every other TUTTI_ and ANTHROPIC_ variable is dropped.
import { openSync } from "node:fs";
import { join } from "node:path";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const [ROOT, LOGDIR, ...UV] = process.argv.slice(2);
if (!ROOT || !LOGDIR || UV.length === 0 || !process.env.TUTTI_DB) {
  console.error("usage: TUTTI_DB=... node check.mjs ROOT LOGDIR UV...");
  process.exit(2);
}
const CONNECT_S = 60; // the first `uv run` may still have to sync the environment
const CALL_S = 30; // longer than any wait_s below (tutti caps them at 60)
const TOTAL_S = 240; // the whole check, whatever hangs

const clients = [];
let last; // the last answer, shown when a check fails

function fail(message) {
  console.error(`ts-client-check: FAILED: ${message}`);
  if (last !== undefined) console.error(`last answer: ${JSON.stringify(last, null, 2)}`);
  process.exit(1); // the servers see their stdin close and exit
}

function expect(condition, message) {
  if (!condition) fail(message);
}

setTimeout(() => fail(`the check did not finish within ${TOTAL_S} s`), TOTAL_S * 1000).unref();

/** A client connected to a fresh `tutti serve` process, its stderr in LOGDIR/NAME.log. */
async function connect(name, capabilities = {}, setup = () => {}) {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => !k.startsWith("TUTTI_") && !k.startsWith("ANTHROPIC_"),
    ),
  );
  env.TUTTI_DB = process.env.TUTTI_DB;
  const transport = new StdioClientTransport({
    command: UV[0],
    args: [...UV.slice(1), "--directory", ROOT, "run", "tutti", "serve"],
    env,
    stderr: openSync(join(LOGDIR, `${name}.log`), "w"),
  });
  const client = new Client({ name: `tutti-ci-${name}`, version: "1.0.0" }, { capabilities });
  setup(client);
  try {
    await client.connect(transport, { timeout: CONNECT_S * 1000 });
  } catch (err) {
    fail(`${name}: could not connect to \`uv run tutti serve\` (see ${name}.log): ${err.message}`);
  }
  clients.push(client);
  // the SDK compiles each tool's output schema here and checks every answer against it
  const { tools } = await client.listTools(undefined, { timeout: CALL_S * 1000 });
  return { client, tools };
}

function textOf(result) {
  return (result.content ?? []).map((c) => c.text ?? "").join("\n");
}

/** Call a tool; the raw result. The SDK throws if the answer breaks the output schema. */
async function call(client, name, args) {
  try {
    last = await client.callTool({ name, arguments: args }, undefined, {
      timeout: CALL_S * 1000,
    });
  } catch (err) {
    fail(`${name}: the TypeScript SDK rejected the call or its answer: ${err.message}`);
  }
  return last;
}

/** Call a tool that must succeed; its structured content. */
async function ok(client, name, args) {
  const result = await call(client, name, args);
  expect(!result.isError, `${name} answered an error: ${textOf(result)}`);
  expect(result.structuredContent, `${name} answered without structuredContent`);
  return result.structuredContent;
}

/** Long-poll workflow_status until the run stops running: a bounded number of calls. */
async function settled(client, run) {
  for (let i = 0; i < 6 && ["pending", "running"].includes(run.status); i++) {
    const waiting = run.steps && Object.values(run.steps).includes("waiting");
    if (waiting && run.client_tasks.length > 0) return run; // it waits for us
    run = await ok(client, "workflow_status", { run_id: run.run_id, wait_s: 5 });
  }
  return run;
}

// The seed's swarm example, as written there (tests/seed.py: SEED_SWARM).
const SEED_SWARM = {
  type: "swarm",
  topology: "hierarchical",
  agents: {
    coordinator: {
      role: "Task decomposition and synthesis",
      model: "claude-4-opus",
      capabilities: ["planning", "coordination", "synthesis"],
    },
    security_specialist: {
      role: "Security analysis",
      model: "claude-4-sonnet",
      tools: ["/grep", "/bash security-scan"],
    },
    performance_specialist: {
      role: "Performance optimization",
      model: "claude-4-sonnet",
      tools: ["/bash profiler", "/glob"],
    },
  },
  coordination: {
    communication: "event_driven",
    state_sharing: "hierarchical",
    conflict_resolution: "consensus",
  },
};

const GATE = {
  name: "ts-gate",
  steps: [
    { id: "ok", approve: "Go?" },
    { id: "after", args: "went ${ok.output.note}", depends_on: ["ok"] },
  ],
};

async function main() {
  // -- a client that can answer elicitation -------------------------------------------------
  const asked = [];
  const { client, tools } = await connect("elicit", { elicitation: {} }, (c) =>
    c.setRequestHandler(ElicitRequestSchema, async (request) => {
      asked.push(request.params);
      return { action: "accept", content: { approve: true, note: "from ts" } };
    }),
  );

  console.log("ts-client-check: listTools");
  const names = tools.map((t) => t.name);
  for (const wanted of ["workflow_start", "workflow_status", "step_complete", "workflow_plan"]) {
    expect(names.includes(wanted), `listTools does not list ${wanted}: it lists ${names}`);
  }
  for (const t of tools.filter((t) => /^(workflow_|step_complete$)/.test(t.name))) {
    expect(t.outputSchema, `${t.name} has no outputSchema: its answers cannot be validated`);
  }

  console.log("ts-client-check: workflow_plan of an invalid spec");
  const bad = await call(client, "workflow_plan", {
    spec: { name: "ts-bad", steps: [{ id: "a", args: "x", depends_on: ["nowhere"] }] },
  });
  expect(bad.isError === true, "workflow_plan of a spec with an unknown dependency did not fail");
  expect(
    textOf(bad).includes("depends_on") && textOf(bad).includes("nowhere"),
    `workflow_plan's error does not name the bad field (depends_on: nowhere): ${textOf(bad)}`,
  );

  console.log("ts-client-check: workflow_start of a foreach of client steps");
  const FANOUT = {
    name: "ts-fanout",
    steps: [
      { id: "each", foreach: ["red", "green", "blue"], args: "${item | upper}" },
      { id: "ask", foreach: "${each.outputs}", run: "client", prompt: "Name a thing that is ${item}." },
      { id: "list", args: "${ask.outputs | join(', ')}" },
    ],
  };
  const THINGS = { RED: "rose", GREEN: "grass", BLUE: "sky" };
  let run = await ok(client, "workflow_start", { spec: FANOUT, wait_s: 5 });
  const tasks = Object.fromEntries(run.client_tasks.map((t) => [t.step_id, t]));
  expect(
    JSON.stringify(Object.keys(tasks).sort()) === '["ask[0]","ask[1]","ask[2]"]',
    `workflow_start(wait_s=5) did not hand over the client tasks ask[0], ask[1], ask[2] ` +
      `(status ${run.status}, tasks ${Object.keys(tasks)})`,
  );
  ["RED", "GREEN", "BLUE"].forEach((colour, i) =>
    expect(
      tasks[`ask[${i}]`].instructions.includes(`Name a thing that is ${colour}.`),
      `ask[${i}]'s instructions do not ask about ${colour}: ${tasks[`ask[${i}]`].instructions}`,
    ),
  );
  for (const [i, colour] of ["RED", "GREEN", "BLUE"].entries()) {
    run = await ok(client, "step_complete", {
      run_id: run.run_id,
      step_id: `ask[${i}]`,
      output: THINGS[colour],
    });
  }
  run = await settled(client, run);
  expect(run.status === "succeeded", `the foreach run ended ${run.status}, not succeeded: ${run.error}`);
  expect(
    run.outputs.list === "rose, grass, sky",
    `the foreach run's output list is ${JSON.stringify(run.outputs.list)}, not "rose, grass, sky"`,
  );
  expect(
    run.added.each?.succeeded === 3 && run.added.ask?.succeeded === 3,
    `the foreach run does not count 3 succeeded instances under each and ask: ` +
      JSON.stringify(run.added),
  );

  console.log("ts-client-check: the seed's swarm, verbatim, its turns done by the client");
  run = await ok(client, "workflow_start", {
    spec: SEED_SWARM,
    inputs: { task: "Review the login service" },
    wait_s: 5,
  });
  const done = [];
  for (let round = 0; round < 6 && run.client_tasks?.length; round++) {
    for (const task of run.client_tasks) {
      let output;
      if (task.step_id.endsWith(":plan]")) {
        output = {
          subtasks: [
            { agent: "security_specialist", task: "Audit the password reset flow" },
            { agent: "performance_specialist", task: "Profile the login endpoint" },
          ],
        };
      } else if (task.step_id.includes(":work#")) {
        output = `${task.step_id}: two findings`;
      } else {
        expect(task.step_id === "swarm[coordinator:synthesis]", `an unexpected turn ${task.step_id}`);
        expect(task.instructions.includes(": two findings"), "the synthesis does not see the work");
        output = { result: "fix the reset flow first", conflicts: [] };
      }
      run = await ok(client, "step_complete", { run_id: run.run_id, step_id: task.step_id, output });
      done.push(task.step_id);
    }
    run = await settled(client, run);
  }
  expect(run.status === "succeeded", `the swarm ended ${run.status}, not succeeded: ${run.error}`);
  const swarm = (await ok(client, "workflow_result", { run_id: run.run_id })).outputs.swarm;
  expect(
    swarm?.result === "fix the reset flow first" && swarm?.agents?.coordinator?.turns === 2,
    `the swarm's output is ${JSON.stringify(swarm)}`,
  );
  expect(done.length === 4, `the client did ${done.length} turns, not 4: ${done}`);

  console.log("ts-client-check: an approval gate answered by elicitation");
  run = await settled(client, await ok(client, "workflow_start", { spec: GATE, wait_s: 10 }));
  expect(asked.length === 1, `the elicitation handler was called ${asked.length} times, not once`);
  expect(
    asked[0].message.includes("Go?") && asked[0].requestedSchema?.required?.includes("approve"),
    `the elicitation did not ask "Go?" with a form requiring approve: ${JSON.stringify(asked[0])}`,
  );
  expect(
    run.status === "succeeded",
    `the gated run ended ${run.status}, not succeeded, after the elicitation said yes: ${run.error}`,
  );
  expect(
    run.outputs.after === "went from ts",
    `step after says ${JSON.stringify(run.outputs.after)}, not "went from ts"`,
  );
  await client.close();

  // -- a second connection, without the elicitation capability -----------------------------
  console.log("ts-client-check: the same gate as a client task, answered no");
  const { client: plain } = await connect("plain");
  run = await ok(plain, "workflow_start", { spec: GATE, wait_s: 10 });
  expect(
    run.status === "running" && run.client_tasks.some((t) => t.step_id === "ok"),
    `without elicitation the gate ok is not a client task (status ${run.status})`,
  );
  expect(
    run.client_tasks.find((t) => t.step_id === "ok").instructions.includes("Go?"),
    "the gate's client task does not carry its question, Go?",
  );
  run = await settled(
    plain,
    await ok(plain, "step_complete", {
      run_id: run.run_id,
      step_id: "ok",
      output: { approve: false, note: "no" },
    }),
  );
  expect(run.status === "failed", `the run ended ${run.status} after the gate was answered no`);
  expect(
    typeof run.error === "string" && run.error.includes("'ok'") && run.error.endsWith(": no"),
    `the run's error does not name the gate ok and the note "no": ${run.error}`,
  );
  expect(run.steps.after !== "succeeded", "step after ran although its gate said no");
  await plain.close();
}

try {
  await main();
} catch (err) {
  fail(err.stack ?? String(err));
}
console.log("ts-client-check: ok");
process.exit(0);
