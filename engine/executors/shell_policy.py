"""What a spec may run on this machine: the one shell policy. Shell steps use it, and the
agents' `bash` tool is to use it too, so there is one place that decides which program
runs and with which environment.

Two rules keep the allow-list (TUTTI_ALLOW_SHELL) from being walked around:

- The program is resolved to an absolute path with the server's own PATH (its absolute
  entries only) before anything from the spec applies, and that path is what runs. A
  step's `env` cannot change which `wc` runs, and a relative path (`./wc`, `bin/wc`) is
  not the allowed `wc`.
- While the allow-list is active, a step's `env` may not set the variables that change
  which program runs or what code a program loads at start (the dynamic linker's, the
  interpreters' and the shells' start-up hooks, the programs other programs start);
  `TUTTI_*` names are tutti's own. The list is FORBIDDEN_NAMES and FORBIDDEN_PREFIXES.

With no allow-list (`tutti run` on a file its own user gave it, or TUTTI_ALLOW_SHELL=*),
every program is allowed and so is every variable: whoever wrote the spec can already run
anything. The program is still resolved before the env applies, so a spec's PATH does
not change which program runs.

What the env rules cannot do: make an allowed program that runs other programs by design
(`sh`, `env`, `git -c`, `find -exec`, an interpreter) safe. Allowing such a program allows
what it can do with any arguments.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

from tutti_mcp.engine.errors import ConfigurationError, StepError, StepErrorKind

# Names a step's env may not set while the allow-list is active: each changes which program
# runs or what code a program loads or executes when it starts. Matched case-sensitively,
# as the OS does.
FORBIDDEN_NAMES = frozenset(
    {
        # where programs are looked up
        "PATH",
        # shells: start-up files, word splitting, options, trace and prompt hooks
        "BASH_ENV",
        "ENV",
        "IFS",
        "SHELLOPTS",
        "BASHOPTS",
        "PS4",
        "PROMPT_COMMAND",
        "ZDOTDIR",
        "SHELL",
        # the C library: modules and programs it loads (glibc's own "unsecure" list)
        "GCONV_PATH",
        "GETCONF_DIR",
        "LOCPATH",
        "NLSPATH",
        "GLIBC_TUNABLES",
        # interpreters' library paths and start-up options
        "PERL5LIB",
        "PERLLIB",
        "PERL5OPT",
        "PERL5DB",
        "RUBYOPT",
        "RUBYLIB",
        "NODE_OPTIONS",
        "NODE_PATH",
        "LUA_INIT",
        "LUA_PATH",
        "LUA_CPATH",
        "TCLLIBPATH",
        "CLASSPATH",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "JDK_JAVA_OPTIONS",
        # programs that other programs start
        "EDITOR",
        "VISUAL",
        "PAGER",
        "MANPAGER",
        "BROWSER",
        "LESSOPEN",
        "LESSCLOSE",
        "SSH_ASKPASS",
        "SUDO_ASKPASS",
        # git: programs it starts, and where it reads the configuration that names them
        "GIT_EXEC_PATH",
        "GIT_SSH",
        "GIT_SSH_COMMAND",
        "GIT_PAGER",
        "GIT_EDITOR",
        "GIT_SEQUENCE_EDITOR",
        "GIT_ASKPASS",
        "GIT_EXTERNAL_DIFF",
        "GIT_PROXY_COMMAND",
        "GIT_TEMPLATE_DIR",
        "GIT_DIR",
        "GIT_COMMON_DIR",
    }
)
# LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT...; macOS's DYLD_INSERT_LIBRARIES...; PYTHONPATH,
# PYTHONSTARTUP, PYTHONHOME...; bash's exported functions (BASH_FUNC_wc%%), which replace
# a command inside any bash script; GIT_CONFIG, GIT_CONFIG_GLOBAL, GIT_CONFIG_KEY_0...
FORBIDDEN_PREFIXES = ("LD_", "DYLD_", "PYTHON", "BASH_FUNC_", "GIT_CONFIG", "LUA_INIT_")
# the executor sets TUTTI_RUN_ID, TUTTI_STEP_ID, ...: a spec may not pose as tutti
RESERVED_PREFIX = "TUTTI_"


def forbidden(name: str) -> bool:
    """Whether a step's env may not set `name` while the allow-list is active."""
    return name in FORBIDDEN_NAMES or name.startswith(FORBIDDEN_PREFIXES)


def _malformed(name: str) -> bool:
    return not name or "=" in name or "\0" in name


class ShellPolicy:
    """Which programs may run and with which environment. `allow` names the programs:
    bare names (looked up on the server's PATH) or absolute paths (run as named); None
    allows every program and every variable (the CLI running its own user's file)."""

    def __init__(self, allow: Collection[str] | None) -> None:
        if allow is not None and "*" not in allow:
            relative = sorted(p for p in allow if "/" in p and not os.path.isabs(p))
            if relative:
                raise ConfigurationError(
                    f"TUTTI_ALLOW_SHELL names {', '.join(relative)} by relative path, which "
                    "would depend on the directory a step runs in; name the program (wc) or "
                    "give its absolute path (/usr/bin/wc)"
                )
        self.allow = None if allow is None or "*" in allow else frozenset(allow)

    @property
    def restricted(self) -> bool:
        return self.allow is not None

    # -- the program ---------------------------------------------------------------------
    def program_problem(self, program: str) -> str | None:
        """Why `program` may not run here, or None. With the allow-list, an allowed name
        must also resolve on the server's PATH."""
        if self.allow is None:
            return None
        if program not in self.allow:
            allowed = ", ".join(sorted(self.allow)) or "nothing"
            hint = (
                "; a program is named as in TUTTI_ALLOW_SHELL, not by a relative path"
                if "/" in program and not os.path.isabs(program)
                else ""
            )
            return (
                f"program {program!r} is not allowed (TUTTI_ALLOW_SHELL allows: {allowed}); "
                f"add it to TUTTI_ALLOW_SHELL to run it{hint}"
            )
        if _lookup(program) is None:
            return _not_found(program, restricted=True)
        return None

    def resolve(self, program: str, cwd: Path) -> str:
        """The absolute path of the program to run; raise StepError(kind="policy") when it
        may not run and StepError(kind="not_found") when it is nowhere. A bare name is
        looked up on the server's PATH, never on a PATH from the spec; a relative path
        (allowed only without an allow-list) is taken from `cwd`, as exec would."""
        why = self.program_problem(program)
        if why:
            raise StepError(why, retryable=False, kind=StepErrorKind.POLICY)
        if "/" in program:
            path = Path(program) if os.path.isabs(program) else cwd / program
            if not path.is_file():
                raise StepError(
                    f"program {program!r} is not a file",
                    retryable=False,
                    kind=StepErrorKind.NOT_FOUND,
                )
            return str(path)
        found = _lookup(program)
        if found is None:
            raise StepError(
                _not_found(program, restricted=self.restricted),
                retryable=False,
                kind=StepErrorKind.NOT_FOUND,
            )
        return found

    # -- the environment -----------------------------------------------------------------
    def env_problem(self, names: Iterable[str]) -> str | None:
        """Why a step's env may not set these names, or None: each offending name, as
        `env.NAME`, with the reason and what to do."""
        names = list(names)
        problems = []
        malformed = [n for n in names if _malformed(n)]
        if malformed:
            problems.append(
                f"{_fields(malformed)}: not a variable name (empty, or holds '=' or a NUL "
                "byte); rename it"
            )
        if self.allow is not None:
            bad = [n for n in names if not _malformed(n) and forbidden(n)]
            if bad:
                problems.append(
                    f"{_fields(bad)}: a step may not set "
                    f"{'this variable' if len(bad) == 1 else 'these variables'} while "
                    "TUTTI_ALLOW_SHELL is in force: it changes which program runs or what it "
                    "loads; remove it from the step's env"
                )
            mine = [n for n in names if n.startswith(RESERVED_PREFIX)]
            if mine:
                problems.append(
                    f"{_fields(mine)}: TUTTI_* variables are set by tutti itself "
                    "(TUTTI_RUN_ID, TUTTI_STEP_ID, TUTTI_ATTEMPT, TUTTI_IDEMPOTENCY_KEY); "
                    "rename it"
                )
        return "; ".join(problems) or None

    def child_env(self, spec_env: Mapping[str, str], own: Mapping[str, str]) -> dict[str, str]:
        """The program's environment: the server's, then the step's `env`, then tutti's
        own variables (`own`). Raise StepError(kind="policy") for a variable the policy
        refuses or a value holding a NUL byte."""
        why = self.env_problem(spec_env)
        if why:
            raise StepError(why, retryable=False, kind=StepErrorKind.POLICY)
        nul = [k for k, v in spec_env.items() if "\0" in v]
        if nul:
            raise StepError(
                f"{_fields(nul)}: the value holds a NUL byte, which no environment variable "
                "can carry; remove it from the value",
                retryable=False,
                kind=StepErrorKind.POLICY,
            )
        return {**os.environ, **spec_env, **own}


def _fields(names: Iterable[str]) -> str:
    return ", ".join(f"env.{n}" for n in names)


def _lookup(program: str) -> str | None:
    """The program's absolute path on the server's own PATH, skipping relative entries
    (`.`, the empty entry), which would make the answer depend on the working directory a
    step chose. An absolute path is itself if it names an executable file."""
    if "/" in program:
        return program if os.path.isabs(program) and _executable(program) else None
    entries = os.environ.get("PATH", os.defpath).split(os.pathsep)
    search = os.pathsep.join(e for e in entries if os.path.isabs(e))
    return shutil.which(program, path=search) if search else None


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _not_found(program: str, *, restricted: bool) -> str:
    if "/" in program:
        return f"program {program!r} is not an executable file on this machine"
    where = "the server's PATH" if restricted else "PATH"
    return (
        f"program {program!r} not found on {where} (its own PATH: a step's env does not "
        "change where programs are looked up); install it there"
        + (" or name it by absolute path in TUTTI_ALLOW_SHELL" if restricted else "")
    )
