"""The demo's example (`stablectl demo`, and the tests' shared fixture): a CPython-like
upstream with maintenance branches, release tags, security fixes, backports, a revert and a
conflict, and its fork, built with gitops/history.py in a directory of the caller's."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stablectl.gitops.history import MAINTAINER, History, lines, news


@dataclass
class Example:
    """Where the example lives and what each commit is, for assertions and the demo."""

    upstream: Path
    fork: Path
    shas: dict[str, str]

    def policy_yaml(self, *, project: str = "pyexample", extra: str = "") -> str:
        return f"""\
# A stablectl policy for the example upstream built here.
version: 1
project: {project}
upstream:
  git: {self.upstream}
  forge: example/cpython
  main: main
fork:
  git: {self.fork}
  forge: example/cpython-stable
forge:
  kind: local
identity:
  name: stablectl
  email: stablectl@example.org
series:
  - name: "3.11.2"
    base: v3.11.2
    sources: ["3.11", "main"]
    eol: 2027-10-31
  - name: "3.12.1"
    base: v3.12.1
    sources: ["3.12", "main"]
flags:
  - name: security-news
    security: true
    paths: ["Misc/NEWS.d/next/Security/*.rst"]
  - name: cve
    security: true
    message: '\\bCVE-\\d{{4}}-\\d{{4,}}\\b'
  - name: requested
    trailers:
      Backport: "stable"
exclude:
  - sha: {self.shas["excluded"]}
    reason: needs a new API; not for stable
maintainers: [maint]
approvals:
  required: 1
checks:
  required: ["local-ci"]
  test_command: "python3 -m unittest discover -s Lib/test -q"
release:
  tarball: "Python-{{version}}"
  short_review: "a demo on a local forge: no downstream waits for it"
  review_hours: 0
{extra}"""


def _base_tree() -> dict[str, str | bytes | None]:
    files: dict[str, str | bytes | None] = {
        "README.rst": "This is Python version 3.13.0 alpha 0\n",
        "Include/patchlevel.h": '#define PY_VERSION "3.13.0a0"\n',
        "Lib/urllib/parse.py": lines(60, "# parse"),
        "Lib/http/client.py": lines(80, "# client"),
        "Lib/tarfile.py": lines(80, "# tarfile"),
        "Lib/email/utils.py": lines(40, "# email"),
        "Lib/ssl.py": lines(40, "# ssl"),
        "Lib/zipfile.py": lines(40, "# zipfile"),
        "Lib/test/__init__.py": "",
        "Lib/test/test_smoke.py": (
            "import unittest\n\n\nclass Smoke(unittest.TestCase):\n"
            "    def test_ok(self):\n        self.assertTrue(True)\n"
        ),
    }
    for i in range(20):
        files[f"Modules/mod{i:02d}.c"] = lines(30, f"/* mod{i} */")
    return files


def _edit(text: str, index: int, new: str) -> str:
    ls = text.splitlines(keepends=True)
    ls[index] = new if new.endswith("\n") else new + "\n"
    return "".join(ls)


def build_example(root: Path) -> Example:
    """A CPython-like upstream (main, 3.11, 3.12, tags v3.11.2 and v3.12.1) with flagged
    fixes covering every case the engine must handle, and a fork with `3.11.2-stable`."""
    h = History(root / "upstream.git")
    s: dict[str, str] = {}
    _up_to_3_11_2(h, s)
    _branch_3_12(h, s)
    _fixes_and_backports(h, s)
    _fixes_with_a_past(h, s)
    fork = _fork(root, h, s)
    return Example(upstream=h.path, fork=fork.path, shas=s)


def _up_to_3_11_2(h: History, s: dict[str, str]) -> None:
    """main and 3.11 up to v3.11.2, with the fixes its base already holds (by trailer, by
    patch-id only) and 3.11's own divergence (the context of later conflicts)."""
    s["root"] = h.commit("main", "Initial import", _base_tree())
    h.commit("main", "gh-1000: Start 3.11 development (#1001)", {"README.rst": "3.11 dev\n"})

    # A security fix that reached 3.11 before v3.11.2 was tagged: already in the base.
    s["prebase"] = h.commit(
        "main",
        "gh-1100: Reject control characters in email headers (#1101)",
        {
            "Lib/email/utils.py": _edit(h.read("main", "Lib/email/utils.py"), 3, "# strict"),
            **news("Security", 1100, "Reject control characters in email headers."),
        },
    )
    s["branchpoint"] = h.commit("main", "Python 3.11.0b1", {"README.rst": "3.12 dev\n"})
    h.branch("3.11", s["branchpoint"])
    h.commit("3.11", "[3.11] Python 3.11.0", {"Include/patchlevel.h": '"3.11.0"\n'})

    # A backport made without -x before the base: only its patch-id links it.
    s["noxfix"] = h.commit(
        "main",
        "gh-1200: Limit zipfile comment size (#1201)",
        {
            "Lib/zipfile.py": _edit(h.read("main", "Lib/zipfile.py"), 5, "# limit comment"),
            **news("Security", 1200, "Limit the size of zipfile comments."),
        },
    )
    s["noxfix-3.11"] = h.backport(
        s["noxfix"], "3.11", record_origin=False, message="Limit zipfile comments\n"
    )

    # A fix backported with -x before v3.11.2: in the base through its trailer.
    s["P"] = h.commit(
        "main",
        "gh-1250: Quote cookie values in http.client (#1251)",
        {
            "Lib/http/client.py": _edit(h.read("main", "Lib/http/client.py"), 70, "# quoted"),
            **news("Security", 1250, "Quote cookie values."),
        },
    )
    s["P-3.11"] = h.backport(s["P"], "3.11")

    # 3.11 diverges from main in tarfile.py and ssl.py (context for later conflicts).
    h.commit(
        "3.11",
        "[3.11] gh-2900: Update ssl for 3.11 (GH-2901)",
        {"Lib/ssl.py": _edit(h.read("3.11", "Lib/ssl.py"), 7, "# 3.11 ssl")},
    )
    h.commit(
        "3.11",
        "[3.11] gh-1300: Adjust tarfile for 3.11 (GH-1301)",
        {"Lib/tarfile.py": _edit(h.read("3.11", "Lib/tarfile.py"), 10, "# 3.11 specific")},
    )
    s["v3.11.2"] = h.commit("3.11", "Python 3.11.2", {"Include/patchlevel.h": '"3.11.2"\n'})
    h.tag("v3.11.2", s["v3.11.2"])


def _branch_3_12(h: History, s: dict[str, str]) -> None:
    """3.12 branched from main, diverging in ssl.py, tagged v3.12.1."""
    s["branchpoint-3.12"] = h.commit("main", "Python 3.12.0b1", {"README.rst": "3.13 dev\n"})
    h.branch("3.12", s["branchpoint-3.12"])
    h.commit(
        "3.12",
        "[3.12] gh-2900: Update ssl for 3.12 (GH-2901)",
        {"Lib/ssl.py": _edit(h.read("3.12", "Lib/ssl.py"), 7, "# 3.12 ssl")},
    )
    s["v3.12.1"] = h.commit("3.12", "Python 3.12.1", {"Include/patchlevel.h": '"3.12.1"\n'})
    h.tag("v3.12.1", s["v3.12.1"])


def _fixes_and_backports(h: History, s: dict[str, str]) -> None:
    """Ordinary commits, then fixes A-D: backported to both branches, on main only, applying
    only from its 3.12 backport, conflicting everywhere."""
    # Noise: ordinary commits.
    for i in range(5):
        h.commit(
            "main",
            f"gh-{1400 + i}: Improve mod{i:02d} (#{1500 + i})",
            {f"Modules/mod{i:02d}.c": lines(30, f"/* mod{i} v2 */")},
        )

    # Fix A: security NEWS, backported by miss-islington to 3.12 and 3.11.
    s["A"] = h.commit(
        "main",
        "gh-2000: Reject invalid IPv6 hosts in urlsplit (#2001)\n\n"
        "Brackets must enclose a valid IPv6 address.",
        {
            "Lib/urllib/parse.py": _edit(h.read("main", "Lib/urllib/parse.py"), 20, "# ipv6"),
            **news("Security", 2000, "Reject invalid IPv6 hosts in urlsplit."),
        },
    )
    s["A-3.12"] = h.backport(s["A"], "3.12")
    s["A-3.11"] = h.backport(s["A"], "3.11")

    # Fix B: a CVE named in the message; on main only (no backport yet).
    s["B"] = h.commit(
        "main",
        "gh-2100: Fix quadratic time in http.client headers (#2101)\n\nThis is CVE-2023-24329.",
        {"Lib/http/client.py": _edit(h.read("main", "Lib/http/client.py"), 40, "# linear")},
    )

    # Fix C: conflicts on 3.11 from the original, but the 3.12 backport applies.
    main_tar = h.read("main", "Lib/tarfile.py")
    s["C"] = h.commit(
        "main",
        "gh-2200: Filter tarfile members with absolute paths (#2201)",
        {
            "Lib/tarfile.py": _edit(_edit(main_tar, 10, "# main filter"), 13, "# check abs"),
            **news("Security", 2200, "Filter tarfile members with absolute paths."),
        },
    )

    def adapt_for_312(files: dict[str, str | bytes | None]) -> dict[str, str | bytes | None]:
        text = h.read("3.12", "Lib/tarfile.py")
        files["Lib/tarfile.py"] = _edit(text, 13, "# check abs")
        return files

    s["C-3.12"] = h.backport(s["C"], "3.12", adapt=adapt_for_312)

    # Fix D: conflicts on every source.
    s["D"] = h.commit(
        "main",
        "gh-2300: Harden ssl hostname matching (#2301)",
        {
            "Lib/ssl.py": _edit(h.read("main", "Lib/ssl.py"), 7, "# harden main"),
            **news("Security", 2300, "Harden ssl hostname matching."),
        },
    )


def _fixes_with_a_past(h: History, s: dict[str, str]) -> None:
    """Fixes E-I: reverted, requested by trailer, excluded, applied by hand on the fork (with
    and without a trailer)."""
    # Fix E: flagged, backported, then reverted everywhere.
    s["E"] = h.commit(
        "main",
        "gh-2400: Tighten mod07 parsing (#2401)",
        {
            "Modules/mod07.c": lines(30, "/* mod7 tight */"),
            **news("Security", 2400, "Tighten mod07 parsing."),
        },
    )
    s["E-3.11"] = h.backport(s["E"], "3.11")
    s["E-revert"] = h.revert(s["E"], "main")
    s["E-revert-3.11"] = h.backport(s["E-revert"], "3.11")

    # Fix F: requested by trailer (not a security fix).
    s["F"] = h.commit(
        "main",
        "gh-2500: Fix a crash in mod08 (#2501)\n\nBackport: stable",
        {"Modules/mod08.c": lines(30, "/* mod8 fixed */")},
    )

    # Fix G: flagged, but excluded by the policy.
    s["excluded"] = h.commit(
        "main",
        "gh-2600: Add hardened defaults API (#2601)",
        {
            "Modules/mod09.c": lines(30, "/* mod9 new api */"),
            **news("Security", 2600, "New hardened defaults API."),
        },
    )

    # Fix H: already applied on the fork's stable branch by hand, with a trailer.
    s["H"] = h.commit(
        "main",
        "gh-2700: Bound recursion in mod10 (#2701)",
        {
            "Modules/mod10.c": lines(30, "/* mod10 bounded */"),
            **news("Security", 2700, "Bound recursion in mod10."),
        },
    )
    s["H-3.11"] = h.backport(s["H"], "3.11")

    # Fix I: on the fork without -x: found by patch-id only.
    s["I"] = h.commit(
        "main",
        "gh-2800: Validate mod11 lengths (#2801)",
        {
            "Modules/mod11.c": lines(30, "/* mod11 validated */"),
            **news("Security", 2800, "Validate mod11 lengths."),
        },
    )


def _fork(root: Path, h: History, s: dict[str, str]) -> History:
    """The fork: a bare repository with 3.11.2-stable at v3.11.2 plus fixes H and I applied by
    hand."""
    fork = History(root / "fork.git", clock=h.clock + 10 * 3600)
    fork.repo.remotes.create("upstream", str(h.path))
    fork.repo.remotes["upstream"].fetch(
        ["+refs/heads/*:refs/heads/upstream/*", "+refs/tags/*:refs/tags/*"]
    )
    for ref in list(fork.repo.references):
        if ref.startswith("refs/heads/upstream/"):
            fork.repo.references.delete(ref)
    fork.branch("3.11.2-stable", s["v3.11.2"])
    s["H-stable"] = fork.backport(
        s["H"], "3.11.2-stable", source=h.repo, author=MAINTAINER, committer=MAINTAINER
    )
    s["I-stable"] = fork.backport(
        s["I"],
        "3.11.2-stable",
        record_origin=False,
        message="Validate lengths in mod11 (backport by hand)\n",
        source=h.repo,
        author=MAINTAINER,
        committer=MAINTAINER,
    )
    fork.repo.set_head("refs/heads/3.11.2-stable")
    return fork
