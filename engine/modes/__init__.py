"""What is specific to each mode beyond the shared scheduler: `auto` (which mode a spec's
shape is), `swarm` (agents in a topology, consensus, recovery) and `sugar` (the top-level
forms of the swarm and pipeline modes, written as one step)."""
