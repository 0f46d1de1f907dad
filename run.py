#!/usr/bin/env python3
"""One-command entry point for a fresh machine that has only Python 3.11+.

    python3 run.py test            # tox: lint (ruff, mypy --strict) + the full test suite
    python3 run.py demo            # decode a real captured CurrentDemandReq
    python3 run.py lint | bench
    python3 run.py test -- -k cli  # arguments after -- go to the tox commands ({posargs})

On first use it creates .venv-tools/ with tox in it; afterwards it only runs tox.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TOOLS_VENV = ROOT / ".venv-tools"
TOX_REQUIREMENT = "tox>=4"
TOX_ENVS: dict[str, list[str]] = {
    "test": [],
    "lint": ["-e", "lint"],
    "demo": ["-e", "demo"],
    "bench": ["-e", "bench"],
}


class SetupError(Exception):
    """The tools environment could not be prepared."""


def _bin_dir() -> Path:
    return TOOLS_VENV / ("Scripts" if os.name == "nt" else "bin")


def _ensure_tox() -> Path:
    """Return the path of tox inside .venv-tools, creating the venv and installing tox if needed."""
    python = _bin_dir() / ("python.exe" if os.name == "nt" else "python")
    tox = _bin_dir() / ("tox.exe" if os.name == "nt" else "tox")
    if tox.exists():
        return tox
    if not python.exists():
        print(f"run.py: creating {TOOLS_VENV.name}/ with {TOX_REQUIREMENT}", file=sys.stderr)
        try:
            venv.EnvBuilder(with_pip=True).create(TOOLS_VENV)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise SetupError(
                f"could not create {TOOLS_VENV}: {exc} "
                "(on Debian/Ubuntu install the python3-venv package)"
            ) from exc
    pip_install = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    pip = subprocess.run(
        [*pip_install, TOX_REQUIREMENT], capture_output=True, text=True, check=False
    )
    if pip.returncode != 0 or not tox.exists():
        sys.stderr.write(pip.stdout + pip.stderr)
        raise SetupError(
            f"could not install {TOX_REQUIREMENT} into {TOOLS_VENV} "
            f"(pip exit code {pip.returncode}); delete that folder and try again"
        )
    return tox


def _parse_args(argv: list[str]) -> tuple[str, list[str]]:
    posargs: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, posargs = argv[:split], argv[split + 1 :]
    parser = argparse.ArgumentParser(
        prog="run.py",
        description="Run the project's checks through tox in a private tools venv.",
        epilog="Arguments after -- are passed to the tox commands (e.g. pytest options).",
    )
    parser.add_argument("command", choices=TOX_ENVS, help="what to run")
    return parser.parse_args(argv).command, posargs


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - explain instead of failing obscurely
        print(f"error: Python 3.11+ is required, this is {sys.version.split()[0]}", file=sys.stderr)
        return 2
    command, posargs = _parse_args(argv)
    try:
        tox = _ensure_tox()
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    args = [str(tox), *TOX_ENVS[command], *(["--", *posargs] if posargs else [])]
    os.chdir(ROOT)
    if os.name == "nt":
        return subprocess.call(args)
    os.execv(args[0], args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
