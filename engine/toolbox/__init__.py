"""The agents' toolbox: tools a model may call in a bounded tool-use loop (`read`, `grep`,
`glob`, `bash`, `memory`), given to a prompt step or a swarm agent by its `tools:` field.

Kept free of imports: engine.spec imports `engine.toolbox.spec`, and the tools import the
spec models.
"""
