"""Per fix: the CPython test modules its PR ran, on the head that was merged, and the result.

python3 ci_report.py policy.yaml     # with STABLECTL_STATE set, after run.sh
"""

import os
import re
import sys
from pathlib import Path

from stablectl.forge import open_forge
from stablectl.forge.local import LocalForge
from stablectl.policy import load_policy

policy = load_policy(Path(sys.argv[1]))
state = Path(os.environ["STABLECTL_STATE"])
forge = open_forge(policy, state)
assert isinstance(forge, LocalForge)
logs = state / "ci-logs"
rows = []
for pr in sorted(forge.list_prs("all"), key=lambda p: p.number):
    if pr.marker is None or pr.marker.kind != "backport" or pr.state != "merged":
        continue
    log = logs / f"pr{pr.number}-{pr.head_sha[:12]}.log"
    text = log.read_text(errors="replace") if log.is_file() else ""
    tests = re.search(r"^tests: (.*)$", text, re.M)
    build = re.search(r"^build: (\d+)s$", text, re.M)
    took = re.search(r"^Total duration: (.*)$", text, re.M)
    ok = re.search(r"^Tests result: SUCCESS", text, re.M) is not None
    count = re.search(r"^(?:All )?(\d+) tests? OK\.", text, re.M)
    rows.append(
        (
            pr.number,
            pr.title.removeprefix(f"[{pr.base}] ")[:60],
            (tests.group(1).strip() if tests else "(no run on the merged head)"),
            "passed" if ok else ("FAILED" if text else "not run"),
            int(count.group(1)) if count else 0,
            build.group(1) + "s" if build else "-",
            took.group(1) if took else "-",
        )
    )
for r in rows:
    print(
        f"#{r[0]:<3} {r[3]:7} {r[4]:2} modules  build {r[5]:>5}  tests {r[6]:>9}  {r[1]}  [{r[2]}]"
    )
passed = sum(1 for r in rows if r[3] == "passed")
modules = sum(r[4] for r in rows)
print(
    f"{passed} of {len(rows)} merged fixes passed CPython's tests on their merged head "
    f"({modules} test-module runs)"
)
