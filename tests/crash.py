"""Crash injection for the reliability tests: `python tests/crash.py N ARGS...`
runs `stablectl ARGS...` and kills the process (SIGKILL, no cleanup) right after its Nth
write point (a push or a forge write), to prove that the next run recovers
(tests/reliability/test_crash.py). Product code only counts write points; the kill lives
here, outside the wheel.
"""

from __future__ import annotations

import os
import signal
import sys

from stablectl.controller.sync.apply import WritePoints


def main(argv: list[str]) -> None:
    after = int(argv[0])

    def crash(count: int) -> None:
        if count >= after:
            os.kill(os.getpid(), signal.SIGKILL)

    WritePoints.observers.append(crash)
    from stablectl.cli.main import main as stablectl_main

    stablectl_main(argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
