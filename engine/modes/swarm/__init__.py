"""Swarm mode: agents with roles, models and tools in a topology (hierarchical, mesh,
pipeline, star). Every agent turn is a step added to the run at run time, so it is durable
and resumed like any other step."""
