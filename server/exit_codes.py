"""What `tutti` exits with: the same for every command."""

EXIT_OK = 0  # done; a run: it succeeded
EXIT_FAILED = 1  # a run failed or was cancelled
EXIT_USAGE = 2  # an invalid command line, spec, setting or database, or an unknown run
EXIT_WAITING = 3  # a run waits for client steps (`tutti complete`)
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM: the run is recorded interrupted, resumable
