"""A process that renders the templates sent to it, one JSON request per line on stdin
and one JSON answer per line on stdout, under a memory limit (argv[1], bytes).

The hostile template tests send their attacks here so that a regression (a template
that allocates gigabytes or computes forever) fails the test with a MemoryError or a
timeout, and a kill, instead of taking the test process (or the machine) with it.
"""

from __future__ import annotations

import json
import resource
import sys
import time


def main() -> None:
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from tutti_mcp.engine.errors import TemplateError
    from tutti_mcp.engine.templating import evaluate, render

    for line in sys.stdin:
        request = json.loads(line)
        fn = evaluate if request["kind"] == "evaluate" else render
        started = time.perf_counter()
        answer: dict[str, object]
        try:
            answer = {"value": repr(fn(request["text"], request["context"]))[:200]}
        except TemplateError as exc:
            answer = {"error": str(exc)}
        except Exception as exc:  # the worker's boundary: the test shows what escaped
            answer = {"crash": f"{type(exc).__name__}: {exc}"[:500]}
        answer["seconds"] = round(time.perf_counter() - started, 3)
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
