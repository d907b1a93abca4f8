"""Pipeline mode: a stream of items through stages, with bounded buffers between them
(backpressure), per-stage concurrency, per-item retries and dead letters, and resume from
the last committed item of each stage. Not a DAG of per-item steps: the pipeline is one
step whose items stream through its own runtime, sharing the executors, the store and the
reporting with the rest of the engine."""
