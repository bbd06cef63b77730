"""Patch queues: `git format-patch` files, mboxes and quilt series, as fixes with an identity.

Each patch yields its upstream identity (the format-patch `From <sha>` line, the
`(cherry picked from commit …)` trailers, a DEP-3 `Origin:` commit URL), its message, author,
and the paths its diff adds, changes and deletes — what flag rules and selection need.
"""

from __future__ import annotations

import email
import email.errors
import email.header
import email.policy
import mailbox
import re
import tempfile
from dataclasses import dataclass, field
from email.utils import parseaddr, parsedate_to_datetime
from pathlib import Path

from stablectl.gitops.git import git
from stablectl.gitops.messages import cherry_pick_message

_FROM_SHA = re.compile(rb"^From ([0-9a-f]{40}) ", re.M)
_ORIGIN = re.compile(r"^Origin:\s*(?:\w+,\s*)?\S*?/commit/([0-9a-f]{7,40})", re.M | re.I)
_DIFF_GIT = re.compile(r"^diff --git a/(\S+) b/(\S+)$", re.M)
_UNIFIED = re.compile(rb"^--- \S+.*\n\+\+\+ \S+", re.M)
_PLUS_MINUS = re.compile(r"^--- (\S+).*\n\+\+\+ (\S+)", re.M)


def _strip_prefix(path: str) -> str:
    return path.split("/", 1)[1] if "/" in path else path


@dataclass
class Patch:
    name: str
    upstream: str | None  # format-patch `From <sha>` or DEP-3 Origin commit
    subject: str
    message: str  # subject, blank line, body (trailers included), without the diff
    author_name: str
    author_email: str
    author_time: int
    diff: bytes
    paths: list[str] = field(default_factory=list)
    deleted: set[str] = field(default_factory=set)
    exported: bool = False  # a `git format-patch` export (its `From <sha>` names the commit)
    header: str = ""  # everything before the diff (mail or DEP-3 headers, free text)


def parse_patch(name: str, data: bytes) -> Patch:
    """One patch: a `git format-patch` file, or a plain diff with DEP-3 headers."""
    m = _FROM_SHA.match(data)
    upstream = m.group(1).decode() if m else None
    head, diff = _split(data)
    msg = email.message_from_bytes(head, policy=email.policy.compat32)
    subject = " ".join(_header(msg.get("Subject")).split())
    subject = re.sub(r"^\[PATCH[^\]]*\]\s*", "", subject)
    body = msg.get_payload(decode=False) if head else ""
    if not isinstance(body, str):
        body = ""
    body = re.split(r"^---\s*$", body, maxsplit=1, flags=re.M)[0].strip("\n")
    if not subject:  # DEP-3: the description is the first header paragraph
        subject = (
            _dep3(head.decode("utf-8", "replace"), "Description")
            or _dep3(head.decode("utf-8", "replace"), "Subject")
            or name
        )
    if upstream is None:
        o = _ORIGIN.search(head.decode("utf-8", "replace"))
        upstream = o.group(1) if o and len(o.group(1)) == 40 else None
    author_name, author_email = parseaddr(_header(msg.get("From")))
    when = 0
    if msg.get("Date"):
        try:
            when = int(parsedate_to_datetime(str(msg["Date"])).timestamp())
        except (TypeError, ValueError):
            when = 0
    paths, deleted = _diff_paths(diff.decode("utf-8", "replace"))
    message = subject + ("\n\n" + body if body else "") + "\n"
    return Patch(
        name,
        upstream,
        subject,
        message,
        author_name,
        author_email,
        when,
        diff,
        paths,
        deleted,
        exported=m is not None,
        header=head.decode("utf-8", "replace"),
    )


def _split(data: bytes) -> tuple[bytes, bytes]:
    """A patch's header (mail or DEP-3) and its diff."""
    if data.startswith(b"diff --git "):
        return b"", data
    head, sep, rest = data.partition(b"\ndiff --git ")
    if sep:
        return head, b"diff --git " + rest
    # A quilt-refreshed patch: unified diffs without `diff --git` lines.
    u = _UNIFIED.search(data)
    if u is not None:
        return data[: u.start()], data[u.start() :]
    return head, b""


def _diff_paths(text: str) -> tuple[list[str], set[str]]:
    """The paths a diff adds, changes or deletes (in order), and those it deletes."""
    paths: list[str] = []
    deleted: set[str] = set()
    if not _DIFF_GIT.search(text):
        for um in _PLUS_MINUS.finditer(text):
            old, new = um.group(1), um.group(2)
            path = _strip_prefix(new if new != "/dev/null" else old)
            if path not in paths:
                paths.append(path)
            if new == "/dev/null":
                deleted.add(path)
    for dm in _DIFF_GIT.finditer(text):
        a, b = dm.group(1), dm.group(2)
        paths.append(b)
        if a != b:
            paths.append(a)
        block = text[dm.end() : dm.end() + 300]
        if re.match(r"\n(?:old mode .*\n|new mode .*\n)?deleted file mode", block):
            deleted.add(a)
    return paths, deleted


def _header(value: object) -> str:
    """A mail header as text: RFC 2047 encoded words (`=?UTF-8?q?…?=`, which `git format-patch`
    writes for non-ASCII subjects and names) decoded."""
    if value is None:
        return ""
    try:
        return str(email.header.make_header(email.header.decode_header(str(value))))
    except (LookupError, ValueError, email.errors.HeaderParseError):
        return str(value)


def _dep3(text: str, key: str) -> str | None:
    m = re.search(rf"^{key}:\s*(.+)$", text, re.M | re.I)
    return m.group(1).strip() if m else None


def read_queue(path: Path) -> list[Patch]:
    """A quilt directory (with `series`), a `series` file, an mbox, or a directory of
    `*.patch` files (sorted), in queue order."""
    if path.is_dir() and (path / "series").exists():
        path = path / "series"
    if path.name == "series":
        out = []
        for line in path.read_text().splitlines():
            entry = line.split("#", 1)[0].strip()
            if entry:
                name = entry.split()[0]
                out.append(parse_patch(name, (path.parent / name).read_bytes()))
        return out
    if path.is_dir():
        return [
            parse_patch(p.name, p.read_bytes())
            for p in sorted(path.iterdir())
            if p.suffix in (".patch", ".diff")
        ]
    data = path.read_bytes()
    if data.startswith(b"From ") and data.count(b"\nFrom ") > 0:
        box = mailbox.mbox(str(path), create=False)
        return [
            parse_patch(
                f"{path.name}#{i + 1}",
                b"From " + m.get_from().encode() + b"\n" + bytes(m.as_bytes()),
            )
            for i, m in enumerate(box)
        ]
    return [parse_patch(path.name, data)]


def apply_onto(git_dir: Path, onto: str, diff: bytes) -> tuple[str | None, str]:
    """The tree of commit (or tree) `onto` with `diff` applied (`git apply`, no fuzz), in a
    throw-away index; None and git's first complaint when it does not apply."""
    with tempfile.TemporaryDirectory(prefix="stablectl-apply-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        read = git(["read-tree", onto], git_dir=git_dir, env=env, check=False)
        if read.returncode != 0:
            return None, read.stderr.decode(errors="replace").strip()
        r = git(
            ["apply", "--cached", "-p1", "-"], git_dir=git_dir, input=diff, env=env, check=False
        )
        if r.returncode != 0 or not diff:
            why = r.stderr.decode(errors="replace").strip().splitlines()[:1]
            return None, why[0] if why else "no diff"
        return git(["write-tree"], git_dir=git_dir, env=env).stdout.decode().strip(), ""


def build_chain(
    git_dir: Path, base: str, patches: list[Patch], committer: tuple[str, str]
) -> tuple[str, list[str]]:
    """Apply the patches in order onto `base` as commits (author, date and message from each
    patch; deterministic), in the repository's object store. Returns the last commit and the
    patches that did not apply (the chain goes on without them)."""
    problems: list[str] = []
    tip = base
    for p in patches:
        tree, why = apply_onto(git_dir, tip, p.diff)
        if tree is None:
            problems.append(f"{p.name}: does not apply ({why})")
            continue
        # Undated patches (plain diffs) take the time after the commit they apply on.
        stamp = p.author_time or (
            int(
                git(["log", "-1", "--format=%ct", tip], git_dir=git_dir, check=False)
                .stdout.decode()
                .strip()
                or 0
            )
            + 1
        )
        r = git(
            ["commit-tree", tree, "-p", tip, "-F", "-"],
            git_dir=git_dir,
            input=_message(p).encode(),
            env=_identity(p, committer, f"{stamp} +0000"),
            check=False,
        )
        if r.returncode != 0:
            problems.append(f"{p.name}: {r.stderr.decode(errors='replace').strip()}")
            continue
        tip = r.stdout.decode().strip()
    return tip, problems


def _message(p: Patch) -> str:
    """The patch's message, with its identity as the trailer selection follows."""
    if p.upstream and p.upstream not in p.message:
        return cherry_pick_message(p.message, p.upstream)
    return p.message


def _identity(p: Patch, committer: tuple[str, str], when: str) -> dict[str, str]:
    """The patch's author, the queue's committer, both at `when`."""
    return {
        "GIT_AUTHOR_NAME": p.author_name or "unknown",
        "GIT_AUTHOR_EMAIL": p.author_email or "unknown@invalid",
        "GIT_AUTHOR_DATE": when,
        "GIT_COMMITTER_NAME": committer[0],
        "GIT_COMMITTER_EMAIL": committer[1],
        "GIT_COMMITTER_DATE": when,
    }
