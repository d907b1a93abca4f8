"""Prompts (Claude Code offers them as slash commands): each turns the user's words into a
spec and drives the tools. A swarm is written in swarm mode (`type: swarm`), a pipeline in
pipeline mode (`type: pipeline`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp.server.context import LifespanContextT, RequestT
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.prompts.base import Message, Prompt
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, InputRequiredResult

SPEC_FORMAT = """\
Spec format (JSON or YAML object):
  name: short-name
  inputs: {topic: {type: string, required: true}}        # optional
  steps:
    - id: research                       # unique; lowercase words
      prompt: "Research ${inputs.topic}"  # a model step (run: client hands it to you)
      thinking: standard                 # instant | standard | extended | auto
    - id: draft
      depends_on: [research]             # runs when research is done; independent steps run in parallel
      prompt: "Write a draft from: ${research.output}"
    - id: check
      when: "${draft.output | length > 2000}"  # optional condition; false -> step skipped
      command: /task                     # the seed's /query, /task, /protocol templates
      args: "Shorten this draft to 300 words: ${draft.output}"
Other step kinds: `argv: [git, log, -5]` (shell, if the server allows it), `op: template`
with `args: "..."` or `value: {...}` (built-in, no model). Per step: `output: json`,
`timeout`, `retry: {attempts: 3}`, `on_failure: fail | continue | fallback | degrade`."""

GROWING = """\
Fan-out and loops (steps added while the run goes, each durable):
  steps:
    - id: find
      output: json
      prompt: "List the modules to review, as a JSON list of paths"
    - id: review                          # one step per item: review[0], review[1], ...
      foreach: "${find.output}"           # or {glob: "src/**/*.py"} or {lines: files.txt}
      prompt: "Review ${item}"            # ${item_index} is its position
      on_failure: continue                # a failed item leaves null; the rest go on
    - id: refine                          # draft#1, critique#1, draft#2, ...
      loop:
        max_iterations: 3                 # required
        until: "${critique.output.approved}"
        steps:
          - id: draft
            prompt: "Summarise ${review.outputs}. ${'Revise: ' ~ loop.last.critique.notes if loop.last else ''}"
          - id: critique
            output: json
            prompt: "Critique this summary; answer {approved: bool, notes: str}: ${draft.output}"
    - id: publish
      op: template
      args: "${refine.output.draft}"      # a loop's output: its last iteration's, by step"""

# A gate before a step that changes things: the run waits (durably) for the user's answer.
GATE_EXAMPLE = """\
name: gated-edits
inputs: {task: {type: string, required: true}}
steps:
  - id: plan
    prompt: "List the edits for ${inputs.task} as JSON: {edits: [one line each]}"
    output: json
  - id: confirm                 # an approval gate: asks the user, runs nothing itself
    approve: "Apply ${plan.output.edits | length} edits?"
    preview: "${plan.output.edits | join('\\n')}"
    on_reject: explain          # default: fail (the run stops); `timeout: 3600` = no after 1 h
  - id: apply
    depends_on: [confirm]       # runs only once the user said yes
    prompt: "Apply these edits: ${plan.output.edits}"
  - id: explain                 # runs only if the user said no
    prompt: "Tell the user nothing was changed, and why: ${confirm.error}"
"""

# The flow prompt's example (tests compile it): an if block chooses a branch at run time.
PIPELINE_EXAMPLE = """\
name: summarise-notes
type: pipeline
source: {glob: "notes/*.md"}
stages:
  - id: read
    argv: [head, -c, "4000", "${item}"]
    concurrency: 4
  - id: summary
    prompt: "Summarise this note in two sentences:\\n\\n${read.output}"
    concurrency: 4
    retries: 2
  - id: row
    op: json
    value: {file: "${item}", summary: "${summary.output}"}
buffer: 20
ordered: true
sink: {jsonl: summaries.jsonl}
"""

FLOW_EXAMPLE = """\
  inputs: {report: {type: string, required: true}}
  steps:
    - id: triage
      prompt: "Classify this report; answer {severity: low or high}: ${inputs.report}"
      output: json
    - id: route                          # an if block: runs `then` or `else`, never both
      if: "${triage.output.severity == 'high'}"
      then:
        - {id: escalate, prompt: "Write an incident summary: ${inputs.report}"}
      else:
        - {id: reply, prompt: "Draft a friendly reply: ${inputs.report}"}
    - {id: log, prompt: "Note what was done: ${route.output}"}  # the branch's output"""

# The swarm prompt's example (tests compile it): the top-level swarm form, task as an input.
SWARM_EXAMPLE = """\
name: service-review
type: swarm
topology: hierarchical               # or mesh, pipeline, star: see above
inputs: {task: {type: string, required: true}}
task: "${inputs.task}"               # or the request itself, as text
agents:                              # name -> its role (the agent's instructions), and
  coordinator:                       #   optionally model (opus, sonnet, haiku or an id),
    role: Split the task between the specialists, then synthesise their results
    capabilities: [planning, synthesis]
  security:
    role: Find security flaws; name the file and the fix for each
    capabilities: [security]         # what it can do: failed work goes to an agent with it
    backup: reliability              # takes over this agent's turn if it fails
  reliability:
    role: Find failure modes (timeouts, retries, partial writes) and how to handle each
    capabilities: [reliability]
  performance:
    role: Find slow paths and estimate what each fix saves
    thinking: extended               # instant | standard | extended | auto
coordination:
  communication: event_driven        # broadcast: every turn also sees the turns before it
  state_sharing: hierarchical        # specialists see their subtask; shared: the whole task
  conflict_resolution: consensus     # ballots decide disagreements; or vote, or coordinator
max_subtasks: 6"""

SWARM_SHAPE = (
    """\
Choose the topology from the request:
- hierarchical: the work splits into parts for different specialists. The agent named
  `coordinator` plans subtasks for them, they work in parallel, it synthesises.
- mesh: the agents should converge on one answer by reading and revising each other's
  drafts, round after round (`max_rounds`, default 3); a vote settles what is left.
- pipeline: each agent refines the previous one's output, in the order written.
- star: independent answers to the same question, in parallel; the agent named `hub`
  aggregates them.
Give every agent a role that says what it does and what it reports. Disagreements are
settled by `conflict_resolution`: consensus or vote (each agent casts a ballot; add
`rule: majority | supermajority | unanimity | weighted` to choose the rule) or coordinator;
a tie goes to the coordinator. A failed agent's turn goes to its `backup`, else to an
agent with the capability the work needs, else the result is marked partial.

Write the spec in swarm mode, like this:
"""
    + SWARM_EXAMPLE
    + """

A swarm can also be one step of a chain, reading earlier steps in its task:
  steps: [{id: find, ...}, {id: review, swarm: {agents: {...}, task: "${find.output}"}}]"""
)

SWARM_DRIVE = """\
Then:
1. Call workflow_plan with the spec; fix any error it names (it names the exact field).
2. Call workflow_start with the spec and inputs {task: <the request, in full>} (wait_s=20).
3. Follow the `next` field of each answer. Without an API key each agent's turn is a
   client task for you: its `system` is the agent's role; do the turn in that role only,
   in the shape it asks for (JSON for a plan, a synthesis, a draft or a ballot), and
   report it with step_complete. Turns listed together are independent: do them in
   parallel where you can. Otherwise call workflow_status with wait_s until the run is done.
4. Call workflow_result and give the user the swarm's `result`, then what the agents
   disagreed on and how it was decided (`consensus`), any recovery and `missing` parts,
   and the figures (turns, parallelism, tokens, cost)."""

DRIVE = """\
Then:
1. Call workflow_plan with the spec; fix any error it names (it names the exact field).
2. Call workflow_start with the spec (wait_s=20 is a good start).
3. Follow the `next` field of each answer: do client_tasks yourself (in parallel where
   you can) and report each with step_complete; otherwise call workflow_status with
   wait_s until the run is done.
4. Call workflow_result and give the user the outputs that matter, with the metrics."""


def _prompt(kind: str, shape: str, request: str) -> str:
    return f"""Build a tutti {kind} workflow for this request and run it:

{request}

{shape}

{SPEC_FORMAT}

{GROWING}

{DRIVE}"""


class CheckedPrompt(Prompt):
    """A prompt whose missing arguments are the caller's mistake: INVALID_PARAMS (-32602) with
    a message naming them, where mcp's own check answers code 0 (legacy) or -32603 (2026-07-28)
    with a Python set."""

    async def render(
        self,
        arguments: dict[str, Any] | None,
        context: Context[LifespanContextT, RequestT],
    ) -> list[Message] | InputRequiredResult:
        missing = [
            a.name for a in self.arguments or [] if a.required and a.name not in (arguments or {})
        ]
        if missing:
            raise MCPError(INVALID_PARAMS, missing_arguments_message(self, missing))
        return await super().render(arguments, context)


def missing_arguments_message(prompt: Prompt, missing: list[str]) -> str:
    """What the caller left out and every argument the prompt takes."""
    names = ", ".join(repr(m) for m in missing)
    noun = "argument" if len(missing) == 1 else "arguments"
    takes = ", ".join(
        f"{a.name} ({'required' if a.required else 'optional'})" for a in prompt.arguments or []
    )
    return (
        f"prompt {prompt.name!r} is missing the required {noun} {names}; it takes: {takes}. "
        f"Call prompts/get again with {noun} {names} set."
    )


def register(server: MCPServer[Any]) -> None:
    def prompt(fn: Callable[..., str]) -> Callable[..., str]:
        server.add_prompt(CheckedPrompt.from_function(fn))
        return fn

    @prompt
    def chain(request: str) -> str:
        """Run a multi-step task as a chain: steps with dependencies, independent ones in parallel."""
        return _prompt(
            "chain",
            "Break the request into concrete steps. Give each step only the dependencies it "
            "really needs, so independent steps run at the same time. Work over a list that "
            "an earlier step finds is one `foreach` step; draft-and-improve work is a `loop`; "
            "a step can run a whole workflow as a child run (`workflow:` a spec file or an "
            "inline spec, with `inputs:` for it).",
            request,
        )

    @prompt
    def flow(request: str) -> str:
        """Run a conditional flow: branches chosen by `when` conditions on earlier outputs."""
        return _prompt(
            "flow",
            "Use a classifying step with `output: json`, then an if block on its fields: "
            "`if:` a condition, `then:` the steps to run when it holds, `else:` the steps to "
            "run when it does not (ids unique across the spec; blocks nest). Only the "
            "matching branch runs; the other is recorded skipped with the condition's value. "
            "Steps after the block read the output of the branch that ran as "
            "${<block id>.output}. For a single optional step, `when:` on that step is "
            f"enough. For example:\n{FLOW_EXAMPLE}\n"
            "Before a step that changes things (files, messages, deploys), add an approval "
            "gate; the user's answer reaches you as a client task (ask them, never answer for "
            "them) or in their client directly:\n" + GATE_EXAMPLE,
            request,
        )

    @prompt
    def swarm(request: str, agents: str = "3") -> str:
        """Run several agents with roles on one problem, in a topology (hierarchical, mesh,
        pipeline, star), with recorded consensus and recovery."""
        return f"""Build a tutti swarm for this request and run it:

{request}

Use {agents} specialists besides the coordinator (in a star: {agents} spokes besides the
hub; in a mesh or a pipeline: {agents} agents, none of them a coordinator).
{SWARM_SHAPE}

{SWARM_DRIVE}"""

    @prompt
    def pipeline(request: str, items: str = "") -> str:
        """Stream items through stages with bounded buffers, retries and dead letters."""
        listed = f" The items: {items}." if items else ""
        return _prompt(
            "pipeline",
            "Shape it as a pipeline (`type: pipeline`): a `source` (`items:` a list or "
            "${inputs.x}, `glob:`, `lines:` or `jsonl:` a workspace file, `command:` an "
            "argv), `stages` written like steps that read `${item}`, `${item_index}` and "
            "earlier stages' `${STAGE.output}`, each with `concurrency`, `retries`, `timeout` "
            "and an optional `when`; a bounded `buffer`; `ordered`; and a `sink` (the step's "
            "output by default, or `{jsonl: PATH}` for many items). Items that still fail "
            "after their retries become dead letters: the run fails naming them, and "
            "workflow_resume runs them again after a fix, without redoing finished items. "
            f"For example:\n{PIPELINE_EXAMPLE}{listed}",
            request,
        )

    @prompt
    def resume(run_id: str = "") -> str:
        """Find an interrupted or failed run and carry it on without redoing finished work."""
        target = (
            f"The run is {run_id}."
            if run_id
            else "Call workflow_list (status interrupted, then failed) to find the run."
        )
        return f"""Resume a tutti workflow run. {target}
1. Call workflow_result with the run id: read the failures and the recovery plan.
2. If a failure needs a fix in the world (a file, a permission, a setting), make it first.
3. Call workflow_resume with the run id and wait_s=20. To redo a step whose result was
   wrong, pass from_step (a fork that keeps everything before it); to change inputs,
   pass inputs. checkpoint_list shows what is kept.
4. Follow the `next` field of each answer until the run is done, then summarise the
   result for the user."""
