"""The run store: runs, steps, checkpoints, events and workflow history."""
