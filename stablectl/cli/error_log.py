"""Internal errors (bugs): one line on stderr naming a log file that holds what a bug report
needs — stablectl's version, Python and platform, the command line with secrets redacted, and
the traceback. Exit code 3 (pre-commit's `error_handler.py` is the model)."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import sys
import tempfile
import traceback
from pathlib import Path

from stablectl import __version__
from stablectl.errors import redact

INTERNAL_ERROR = 3
LOG_NAME = "stablectl.log"
# Values of options that may carry a secret, and credentials inside URLs.
_SECRET_OPTION = re.compile(r"^--?[\w-]*(token|secret|password|key)[\w-]*$", re.I)
_URL_CREDENTIALS = re.compile(r"(://)[^/@\s]+@")


def redacted_argv(argv: list[str]) -> list[str]:
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append("***")
            hide_next = False
            continue
        name, eq, _value = arg.partition("=")
        if _SECRET_OPTION.match(name):
            if eq:
                out.append(f"{name}=***")
            else:
                out.append(arg)
                hide_next = True
            continue
        out.append(_URL_CREDENTIALS.sub(r"\1***@", redact(arg)))
    return out


def log_dir() -> Path:
    """The state directory (`STABLECTL_STATE` or its default), else the temp directory."""
    state = os.environ.get("STABLECTL_STATE")
    if state:
        return Path(state)
    from stablectl.controller.workspace import default_state_dir

    return default_state_dir()


def write_log(exc: BaseException, argv: list[str]) -> Path:
    """Append the report to the log file and return its path."""
    when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    text = "\n".join(
        [
            f"### stablectl internal error, {when}",
            f"version: stablectl {__version__}",
            f"python: {sys.version.split()[0]} ({platform.platform()})",
            "command: stablectl " + " ".join(redacted_argv(argv)),
            "",
            redact("".join(traceback.format_exception(exc))),
            "",
        ]
    )
    for directory in (log_dir(), Path(tempfile.gettempdir())):
        path = directory / LOG_NAME
        try:
            directory.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as f:
                f.write(text)
            return path
        except OSError:
            continue
    raise OSError("no writable directory for the error log")
