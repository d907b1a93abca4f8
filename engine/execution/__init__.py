"""One run's execution, as small objects called one way: the runner conducts; dispatch
decides what starts within the caps; attempts run a step (timeout, retry, error mapping);
the ledger mirrors the run and is the only writer to the store; client steps wait for the
caller; finish decides how the run ends."""
