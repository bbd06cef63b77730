"""A small builder of CPython-like git history, for tests, the demo and benchmarks.

It writes real commits into a real bare repository with pygit2: maintenance branches, release
tags, security NEWS entries, miss-islington-style ``[3.x] … (GH-N)`` backports with
``(cherry picked from commit …)`` trailers, reverts and conflicting changes. Time is a counter,
so the same script builds the same SHAs every time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pygit2
from pygit2.enums import FileMode

from stablectl.gitops.messages import cherry_pick_message
from stablectl.gitops.objects import blob_bytes, tree
from stablectl.gitops.pick import update_tree

EPOCH = 1_650_000_000  # 2022-04-15
Files = Mapping[str, str | bytes | None]


@dataclass
class Person:
    name: str
    email: str

    def sig(self, when: int) -> pygit2.Signature:
        return pygit2.Signature(self.name, self.email, when, 0)


ALICE = Person("Alice Author", "alice@example.org")
BOT = Person("Miss Islington (bot)", "31488909+miss-islington@users.noreply.github.com")
MAINTAINER = Person("Stable Maintainer", "maint@example.org")


@dataclass
class History:
    """Builds commits on branches of a bare repository."""

    path: Path
    clock: int = EPOCH
    step: int = 3600
    repo: pygit2.Repository = field(init=False)

    def __post_init__(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.repo = pygit2.init_repository(str(self.path), bare=True, initial_head="main")

    def tick(self) -> int:
        self.clock += self.step
        return self.clock

    def tip(self, branch: str) -> str | None:
        try:
            return str(self.repo.references[f"refs/heads/{branch}"].target)
        except KeyError:
            return None

    def read(self, rev: str, path: str) -> str:
        commit = self.repo.revparse_single(rev).peel(pygit2.Commit)
        blob = commit.tree[path]
        return blob_bytes(self.repo, blob.id).decode()

    def commit(
        self,
        branch: str,
        message: str,
        files: Files,
        *,
        author: Person = ALICE,
        committer: Person | None = None,
        parent: str | None = None,
        when: int | None = None,
    ) -> str:
        """Commit `files` (path → content, None deletes) on top of the branch tip."""
        parent = parent if parent is not None else self.tip(branch)
        repo = self.repo
        if parent is None:
            base = tree(repo, repo.TreeBuilder().write())
            parents: list[pygit2.Oid] = []
        else:
            pc = repo[parent].peel(pygit2.Commit)
            base = pc.tree
            parents = [pc.id]
        changes: dict[str, tuple[pygit2.Oid, int] | None] = {}
        for path, content in files.items():
            if content is None:
                changes[path] = None
            else:
                data = content.encode() if isinstance(content, str) else content
                changes[path] = (repo.create_blob(data), int(FileMode.BLOB))
        new_tree = update_tree(repo, base, changes)
        when = when if when is not None else self.tick()
        sha = repo.create_commit(
            f"refs/heads/{branch}",
            author.sig(when),
            (committer or author).sig(when),
            message if message.endswith("\n") else message + "\n",
            new_tree,
            parents,
        )
        return str(sha)

    def branch(self, name: str, at: str) -> None:
        self.repo.references.create(f"refs/heads/{name}", pygit2.Oid(hex=at), force=True)

    def tag(self, name: str, at: str, message: str | None = None) -> None:
        when = self.tick()
        self.repo.create_tag(
            name,
            pygit2.Oid(hex=at),
            pygit2.enums.ObjectType.COMMIT,
            BOT.sig(when),
            message or f"Python {name.lstrip('v')}\n",
        )

    def backport(
        self,
        sha: str,
        branch: str,
        *,
        prefix: str | None = None,
        record_origin: bool = True,
        adapt: Callable[[dict[str, str | None]], dict[str, str | None]] | None = None,
        author: Person | None = None,
        message: str | None = None,
    ) -> str:
        """Re-apply the change of `sha` on `branch` as a miss-islington backport would.

        The change is replayed file by file: each changed file takes the source's new
        content, unless `adapt` rewrites the file set (a hand-adapted backport).
        """
        repo = self.repo
        src = repo[sha].peel(pygit2.Commit)
        parent_tree = src.parents[0].tree
        diff = parent_tree.diff_to_tree(src.tree)
        files: dict[str, str | None] = {}
        for d in diff.deltas:
            if d.status_char() == "D":
                files[d.old_file.path] = None
            else:
                files[d.new_file.path] = blob_bytes(repo, d.new_file.id).decode()
        if adapt is not None:
            files = adapt(files)
        subject, _, rest = src.message.partition("\n")
        if prefix is None:
            prefix = f"[{branch}] "
        subject = subject.replace("(#", "(GH-")
        message = message or f"{prefix}{subject}{_nl(rest)}"
        if record_origin:
            message = cherry_pick_message(message, sha)
        a = src.author
        return self.commit(
            branch,
            message,
            files,
            author=author or Person(a.name, a.email),
            committer=BOT,
        )

    def revert(self, sha: str, branch: str) -> str:
        repo = self.repo
        src = repo[sha].peel(pygit2.Commit)
        parent_tree = src.parents[0].tree
        diff = parent_tree.diff_to_tree(src.tree)
        files: dict[str, str | None] = {}
        for d in diff.deltas:
            if d.status_char() == "A":
                files[d.new_file.path] = None
            else:
                files[d.old_file.path] = blob_bytes(repo, d.old_file.id).decode()
        subject = src.message.splitlines()[0]
        return self.commit(branch, f'Revert "{subject}"\n\nThis reverts commit {sha}.\n', files)


def _nl(rest: str) -> str:
    return "\n" + rest if rest else "\n"


def news(kind: str, issue: int, text: str) -> dict[str, str]:
    """A blurb file as CPython's `blurb` writes it under Misc/NEWS.d/next/<kind>/."""
    return {f"Misc/NEWS.d/next/{kind}/2023-01-01-00-00-00.gh-issue-{issue}.abcdef.rst": text + "\n"}


def lines(n: int, prefix: str) -> str:
    return "".join(f"{prefix} line {i}\n" for i in range(n))


# --------------------------------------------------------------------------------------------
# The example used by tests and the demo.


@dataclass
class Example:
    """Where the example lives and what each commit is, for assertions and the demo."""

    upstream: Path
    fork: Path
    shas: dict[str, str]

    def policy_yaml(self, *, project: str = "pyexample", extra: str = "") -> str:
        return f"""\
# A stablectl policy for the example upstream built by stablectl.testing.history.
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

    s["branchpoint-3.12"] = h.commit("main", "Python 3.12.0b1", {"README.rst": "3.13 dev\n"})
    h.branch("3.12", s["branchpoint-3.12"])
    h.commit(
        "3.12",
        "[3.12] gh-2900: Update ssl for 3.12 (GH-2901)",
        {"Lib/ssl.py": _edit(h.read("3.12", "Lib/ssl.py"), 7, "# 3.12 ssl")},
    )
    s["v3.12.1"] = h.commit("3.12", "Python 3.12.1", {"Include/patchlevel.h": '"3.12.1"\n'})
    h.tag("v3.12.1", s["v3.12.1"])

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

    def adapt_for_312(files: dict[str, str | None]) -> dict[str, str | None]:
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

    # The fork: a bare repository with 3.11.2-stable at v3.11.2 plus two fixes applied by hand.
    fork = History(root / "fork.git", clock=h.clock + 10 * 3600)
    fork.repo.remotes.create("upstream", str(h.path))
    fork.repo.remotes["upstream"].fetch(
        ["+refs/heads/*:refs/heads/upstream/*", "+refs/tags/*:refs/tags/*"]
    )
    for ref in list(fork.repo.references):
        if ref.startswith("refs/heads/upstream/"):
            fork.repo.references.delete(ref)
    fork.branch("3.11.2-stable", s["v3.11.2"])
    s["H-stable"] = _copy_pick(fork, h, s["H"], "3.11.2-stable", record_origin=True)
    s["I-stable"] = _copy_pick(
        fork,
        h,
        s["I"],
        "3.11.2-stable",
        record_origin=False,
        message="Validate lengths in mod11 (backport by hand)\n",
    )
    fork.repo.set_head("refs/heads/3.11.2-stable")
    return Example(upstream=h.path, fork=fork.path, shas=s)


def _copy_pick(
    fork: History,
    up: History,
    sha: str,
    branch: str,
    *,
    record_origin: bool,
    message: str | None = None,
) -> str:
    repo = up.repo
    src = repo[sha].peel(pygit2.Commit)
    diff = src.parents[0].tree.diff_to_tree(src.tree)
    files: dict[str, str | bytes | None] = {}
    for d in diff.deltas:
        if d.status_char() == "D":
            files[d.old_file.path] = None
        else:
            files[d.new_file.path] = blob_bytes(repo, d.new_file.id)
    subject, _, rest = src.message.partition("\n")
    message = message or f"[{branch}] {subject.replace('(#', '(GH-')}{_nl(rest)}"
    if record_origin:
        message = cherry_pick_message(message, sha)
    return fork.commit(branch, message, files, author=MAINTAINER)
