"""What stablectl's own rules select from Debian's queue, and what the tests asked for.

python3 rules.py policy.yaml      # with STABLECTL_STATE set, after run.sh

1. Selection: the run's policy flags every patch of the queue (`debian-queue`: Debian chose
   them). Here the same upstream, fork and queue are planned again, in a state directory of
   their own, with the security rules only (`security-news`, `cve`) and follow-ups on (the
   policy default): which of the 42 patches the rules find, and which only as a follow-up of
   another (the two gh-108342 fixes of CVE-2023-40217's test leaks).
2. Tests: the backport PRs whose `tests-failed` comment named a missing name, and the upstream
   commit sync then picked under the fix (a prerequisite found from the test log).
"""

import collections
import datetime as dt
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from stablectl.controller.missing_names import from_comment
from stablectl.controller.workspace import Workspace
from stablectl.forge import open_forge
from stablectl.forge.base import Marker
from stablectl.forge.local import LocalForge
from stablectl.policy import load_policy, load_policy_text

path = Path(sys.argv[1])
text = path.read_text()
head, _, _ = text.partition("flags:\n")
_, _, tail = text.partition("maintainers:")
rules = (
    head
    + "flags:\n"
    + '  - {name: security-news, security: true, paths: ["Misc/NEWS.d/next/Security/*.rst"]}\n'
    + "  - {name: cve, security: true, message: '\\bCVE-\\d{4}-\\d{4,}\\b'}\n"
    + "maintainers:"
    + tail
)
policy = load_policy_text(rules, str(path.with_name("policy-rules.yaml")))
with tempfile.TemporaryDirectory(prefix="stablectl-rules-") as tmp:
    engine = Workspace(policy, Path(tmp))
    try:
        engine.fetch()
        plan = engine.plan()
    finally:
        engine.close()
fixes = plan.series[0].fixes
by_rule = collections.Counter(
    "follow-up" if pf.candidate.fix.follows else sorted({h.rule for h in pf.candidate.fix.flags})[0]
    for pf in fixes
)
queue = [ln.split()[0] for ln in (path.parent / "queue" / "series").read_text().splitlines() if ln]
print(f"selection by the security rules alone: {len(fixes)} of {len(queue)} queue patches")
for rule, n in sorted(by_rule.items()):
    print(f"  {rule:15s} {n}")
keys = {pf.candidate.fix.key: pf for pf in fixes}
for pf in fixes:
    fx = pf.candidate.fix
    if fx.follows:
        parent = keys.get(fx.follows)
        why = next(h.reason for h in fx.flags if h.of).rsplit(": ", 1)[-1]
        print(f"  follow-up: {fx.subject[:70]}")
        print(f"     of {parent.candidate.fix.subject[:70] if parent else fx.follows[:10]} ({why})")

state = Path(os.environ["STABLECTL_STATE"])
forge = open_forge(load_policy(path), state)
assert isinstance(forge, LocalForge)
print("prerequisites found from failing test runs:")
found = 0
for c in forge.comments_since(dt.datetime(2000, 1, 1, tzinfo=dt.UTC)):
    names = from_comment(c.body)
    marker = Marker.parse(c.body)
    if not names or marker is None:
        continue
    found += 1
    failed = marker.extra.get("sha", "")
    pr = forge.get_pr(c.number)
    print(f"  #{pr.number} {pr.title[:72]}")
    print(f"     tests failed on {failed[:10]}: " + ", ".join(m.describe() for m in names))
    logs = sorted((state / "ci-logs").glob(f"pr{pr.number}-*.log"), key=lambda p: p.stat().st_mtime)
    ran = [lg.stem.split("-", 1)[1] for lg in logs]
    later = ran[ran.index(failed[:12]) + 1 :] if failed[:12] in ran else []
    if not later:
        print("     not tested again")
        continue
    log = (state / "ci-logs" / f"pr{pr.number}-{later[0]}.log").read_text(errors="replace")
    result = re.findall(r"→ (\w+)", log)
    commits = subprocess.run(
        [
            "git",
            "--git-dir",
            str(path.parent / "fork.git"),
            "log",
            "--format=%h %s",
            "-3",
            later[0],
        ],
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    print(f"     next head {later[0][:10]} ({result[-1] if result else '?'}):")
    for line in commits:
        print(f"       {line[:90]}")
if not found:
    print("  none (no PR's tests failed on a missing name)")
