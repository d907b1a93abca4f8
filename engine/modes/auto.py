"""`type: auto`: which of the four modes a spec's shape is, and why.

- pipeline: a `pipeline` step (items streamed through stages), or items flowing
  through stages written as steps: a `foreach` step whose items are an earlier
  `foreach` step's outputs;
- swarm: one step hands work to several model steps that need nothing else (the
  specialists), and one model step brings all of them together (the synthesis);
- flow: the path depends on what earlier steps produce or a person decides: `when`
  conditions, if blocks, loops or approval gates;
- chain: plain dependencies.

The shapes are checked in that order, so a pipeline with a condition is a pipeline. Every
mode runs on the same durable scheduler; the mode names the shape in the plan.
"""

from __future__ import annotations

from tutti_mcp.engine.spec import MODEL_KINDS, Mode
from tutti_mcp.engine.workflow import Workflow

MIN_SPECIALISTS = 2


def choose_mode(wf: Workflow) -> tuple[Mode, str]:
    spec = wf.spec
    if spec.type is not Mode.AUTO:
        return spec.type, f"the spec asks for {spec.type.value}"
    streams = [sid for sid in wf.order if wf.steps[sid].pipeline is not None]
    if streams:
        return Mode.PIPELINE, f"pipeline: {', '.join(streams)} stream items through stages"
    declared = [sid for sid in wf.order if wf.steps[sid].swarm is not None]
    if declared:
        sw = wf.steps[declared[0]].swarm
        assert sw is not None
        return (
            Mode.SWARM,
            f"swarm: {declared[0]} is a {sw.topology.value} swarm of {len(sw.agents)} agents",
        )
    stages = _stages(wf)
    if stages:
        return Mode.PIPELINE, f"pipeline: items flow through the stages {' -> '.join(stages)}"
    swarm = _swarm(wf)
    if swarm is not None:
        hub, specialists, synthesis = swarm
        return (
            Mode.SWARM,
            f"swarm: {hub} hands work to {len(specialists)} specialists "
            f"({', '.join(specialists)}), and {synthesis} brings their answers together",
        )
    # a step inside an if block is conditional only by a `when` of its own
    conditional = [
        sid
        for sid in wf.steps
        if (wf.conditions[sid].own if sid in wf.conditions else wf.steps[sid].when)
    ]
    loops = sorted(wf.bodies, key=wf.order.index)
    why = []
    if wf.blocks:
        many = len(wf.blocks) > 1
        why.append(
            f"if block{'s' if many else ''} {', '.join(wf.blocks)} "
            f"choose{'' if many else 's'} between {'their' if many else 'its'} branches"
        )
    if conditional:
        why.append(f"steps {', '.join(conditional)} run only when their condition holds")
    if loops:
        why.append(f"{', '.join(loops)} loop{'s' if len(loops) > 1 else ''} until done")
    gates = [sid for sid in wf.order if wf.steps[sid].approve is not None]
    if gates:
        why.append(f"{', '.join(gates)} wait{'' if len(gates) > 1 else 's'} for approval")
    if why:
        return Mode.FLOW, "flow: " + "; ".join(why)
    return Mode.CHAIN, "chain: plain dependencies, no conditions"


def _stages(wf: Workflow) -> list[str]:
    """The longest run of `foreach` steps each reading the one before's outputs."""
    fanouts = [sid for sid in wf.order if wf.steps[sid].foreach is not None]
    before: dict[str, str] = {}
    for sid in fanouts:
        fed = [d for d in wf.deps[sid] if d in fanouts]
        if fed:
            before[sid] = fed[0]
    best: list[str] = []
    for sid in fanouts:
        chain = [sid]
        while chain[-1] in before:
            chain.append(before[chain[-1]])
        if len(chain) > len(best):
            best = chain[::-1]
    return best if len(best) > 1 else []


def _swarm(wf: Workflow) -> tuple[str, list[str], str] | None:
    model = {sid for sid in wf.order if wf.executors[sid] in MODEL_KINDS}
    for hub in wf.order:
        specialists = [s for s in wf.dependents[hub] if s in model and wf.deps[s] == (hub,)]
        if len(specialists) < MIN_SPECIALISTS:
            continue
        for synthesis in wf.order:
            if synthesis in model and set(specialists) <= set(wf.deps[synthesis]):
                return hub, specialists, synthesis
    return None
