"""Pure parsing of commit messages: identity links, flags and git's trailer conventions."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

CHERRY_PREFIX = "(cherry picked from commit "
_CHERRY_RE = re.compile(r"^\(cherry picked from commit ([0-9a-fA-F]{7,40})\)\s*$", re.M)
_REVERT_RE = re.compile(r"This reverts commit ([0-9a-fA-F]{7,40})", re.I)
_CVE_RE = re.compile(r"\bCVE-\d{4}-\d{4,}\b", re.I)
_BRANCH_PREFIX_RE = re.compile(r"^\[([^\]\s]+)\]\s*")
_GH_RE = re.compile(r"(?<![\w-])(gh|bpo)-(\d+)\b", re.I)
_PR_TAIL_RE = re.compile(r"\((?:GH-|#)(\d+)\)\s*$", re.I)
_TRAILER_LINE_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9-]*)\s*:\s?(.*)$")
# What a message names besides itself: issues and PRs (GitHub numbers issues and PRs in one
# space, so gh-N, GH-N and #N are one token), bpo issues, and commits by (abbreviated) SHA.
_REF_RE = re.compile(
    r"(?<![\w-])(?:(gh|bpo)-(\d+)|#(\d+))\b|(?<![\w.-])([0-9a-f]{10,40})(?![\w-])", re.I
)
_PR_TAILS_RE = re.compile(r"(?:\s*\((?:GH-|#)\d+\))+\s*$", re.I)
_GIT_GENERATED = ("Signed-off-by: ", CHERRY_PREFIX)


@dataclass(frozen=True)
class MessageInfo:
    """What a commit message says about the commit's identity and relations."""

    subject: str
    branch_prefix: str | None
    issues: tuple[str, ...]  # normalised "gh-123" / "bpo-456", in order of appearance
    pr: int | None  # the upstream PR number from "(GH-N)" / "(#N)" at the end of the subject
    cherry_picked_from: tuple[str, ...]  # every "(cherry picked from commit X)", in order
    reverts: tuple[str, ...]  # "This reverts commit X."
    cves: tuple[str, ...]
    trailers: tuple[tuple[str, str], ...] = field(default=())


def parse_message(message: str) -> MessageInfo:
    lines = message.splitlines()
    subject = lines[0].strip() if lines else ""
    m = _BRANCH_PREFIX_RE.match(subject)
    prefix = m.group(1) if m else None
    issues: list[str] = []
    for kind, num in _GH_RE.findall(subject):
        ref = f"{kind.lower()}-{int(num)}"
        if ref not in issues:
            issues.append(ref)
    pr_m = _PR_TAIL_RE.search(subject)
    pr = int(pr_m.group(1)) if pr_m else None
    if pr is not None:
        # "(GH-N)" names the PR, not an issue.
        issues = [i for i in issues if i != f"gh-{pr}"] or issues
    picks = tuple(dict.fromkeys(s.lower() for s in _CHERRY_RE.findall(message)))
    reverts = tuple(dict.fromkeys(s.lower() for s in _REVERT_RE.findall(message)))
    cves = tuple(dict.fromkeys(c.upper() for c in _CVE_RE.findall(message)))
    return MessageInfo(
        subject=subject,
        branch_prefix=prefix,
        issues=tuple(issues),
        pr=pr,
        cherry_picked_from=picks,
        reverts=reverts,
        cves=cves,
        trailers=tuple(parse_trailers(message)),
    )


# An upstream release commit: "Python 3.8.5", "[3.8] Python 3.8.5rc1", "Bump to 3.9.2",
# "Post 3.8.5", "Version 249.5". Its message may name every CVE the release fixes.
_RELEASE_RE = re.compile(
    r"^(?:\[[^\]]+\]\s*)?(?:python|bump(?: version)? to|post|version|release)?\s*v?"
    r"\d+(?:\.\d+)+(?:(?:a|b|rc)\d+)?\+?\s*$",
    re.I,
)
RELEASE_FILES = frozenset({"Include/patchlevel.h"})


def is_release_commit(subject: str, paths: Sequence[str] = ()) -> bool:
    """Whether a commit is upstream cutting a release (never a fix, whatever CVE ids its
    message lists): its subject is a version, or it changes the version header."""
    return bool(_RELEASE_RE.match(subject.strip())) or any(p in RELEASE_FILES for p in paths)


def strip_branch_prefix(subject: str) -> str:
    return _BRANCH_PREFIX_RE.sub("", subject, count=1)


def change_subject(subject: str) -> str:
    """A subject as the change is known on every branch: without the `[3.x]` prefix and the
    PR numbers at its end (a backport gets a PR of its own), whitespace and case folded."""
    s = strip_branch_prefix(subject.strip())
    while (m := _PR_TAIL_RE.search(s)) is not None:
        s = s[: m.start()].rstrip()
    return " ".join(s.split()).casefold()


def _paragraphs(message: str) -> list[list[str]]:
    paras: list[list[str]] = []
    cur: list[str] = []
    for line in message.splitlines():
        if line.strip() == "":
            if cur:
                paras.append(cur)
                cur = []
        else:
            cur.append(line)
    if cur:
        paras.append(cur)
    return paras


def _is_trailer_block(lines: list[str]) -> bool:
    """Git's rule (trailer.c): all lines are trailers, or at least one is git-generated and
    at least 25% are trailers. Continuation lines (leading whitespace) belong to the trailer
    above them."""
    trailers = non = 0
    generated = False
    prev_trailer = False
    for line in lines:
        if line.startswith(_GIT_GENERATED):
            generated = True
            trailers += 1
            prev_trailer = True
            continue
        if line[:1].isspace() and prev_trailer:
            continue
        m = _TRAILER_LINE_RE.match(line)
        if m and not line[:1].isspace():
            trailers += 1
            prev_trailer = True
        else:
            non += 1
            prev_trailer = False
    if trailers == 0:
        return False
    if non == 0:
        return True
    return generated and trailers * 3 >= non


def parse_trailers(message: str) -> list[tuple[str, str]]:
    """Trailers of the last paragraph, if it is a trailer block (body only, never the subject)."""
    paras = _paragraphs(message)
    if len(paras) < 2 or not _is_trailer_block(paras[-1]):
        return []
    out: list[tuple[str, str]] = []
    for line in paras[-1]:
        m = _TRAILER_LINE_RE.match(line)
        if m and not line[:1].isspace():
            out.append((m.group(1), m.group(2).strip()))
        elif line[:1].isspace() and out:
            key, value = out[-1]
            out[-1] = (key, f"{value} {line.strip()}")
    return out


def stripspace(message: str) -> str:
    """git's whitespace cleanup: trailing spaces, repeated and outer blank lines go."""
    out: list[str] = []
    for line in message.splitlines():
        line = line.rstrip()
        if line or (out and out[-1]):
            out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + "\n" if out else ""


def cherry_pick_message(message: str, source_sha: str) -> str:
    """The message `git cherry-pick -x` writes: the original, then the origin line.

    Like git, a blank line separates it unless the message already ends in a trailer block,
    and the result gets git's whitespace cleanup.
    """
    return _append_trailer(message, f"{CHERRY_PREFIX}{source_sha})")


def _append_trailer(message: str, line: str) -> str:
    """`line` added to the message's trailer block, or as a new one after a blank line."""
    body = message if message.endswith("\n") else message + "\n"
    paras = _paragraphs(body)
    sep = "" if len(paras) >= 2 and _is_trailer_block(paras[-1]) else "\n"
    return stripspace(f"{body}{sep}{line}\n")


RELEASE_TRAILER = "Stablectl-Release"  # ends a release commit's message
PREREQUISITE_TRAILER = "Stablectl-Prerequisite-For"


def prerequisite_message(message: str, fix_key: str) -> str:
    """A prerequisite's pick message: its own, then a trailer naming the fix it is picked for
    (in the trailer block `-x` ends with), so the branch itself says why it is there."""
    return _append_trailer(message, f"{PREREQUISITE_TRAILER}: {fix_key}")


def own_prs(subject: str) -> tuple[int, ...]:
    """Every PR number in the subject's trailing "(GH-N) (#M)": the commit's own PR and, for a
    backport, its original's."""
    m = _PR_TAILS_RE.search(subject)
    return tuple(int(n) for n in re.findall(r"\d+", m.group(0))) if m else ()


def references(message: str) -> tuple[str, ...]:
    """What a commit message names other than its own PRs: `gh-N` (an issue or a PR, from
    gh-N, GH-N or #N), `bpo-N`, and `c-<hex>` for a SHA of 10+ hex digits. The subject's
    trailing "(GH-N) (#M)" (the commit's own PR and, for a backport, the original's) and the
    `(cherry picked from commit …)` / `This reverts commit …` lines are not references: they
    are identity, read by `parse_message`."""
    lines = message.splitlines()
    subject = _PR_TAILS_RE.sub("", lines[0]) if lines else ""
    body = "\n".join(
        ln
        for ln in lines[1:]
        if not _CHERRY_RE.match(ln)
        and not _REVERT_RE.search(ln)
        and not ln.startswith((PREREQUISITE_TRAILER, ADAPTED_TRAILER))
    )
    out: dict[str, None] = {}
    for kind, num, hashnum, sha in _REF_RE.findall(f"{subject}\n{body}"):
        if sha:
            if any(c.isdigit() for c in sha) and any(c.isalpha() for c in sha):
                out[f"c-{sha.lower()}"] = None
        elif kind:
            out[f"{kind.lower()}-{int(num)}"] = None
        else:
            out[f"gh-{int(hashnum)}"] = None
    return tuple(out)


INFRASTRUCTURE_TRAILER = "Stablectl-Infrastructure"
_INFRASTRUCTURE_RE = re.compile(rf"^{INFRASTRUCTURE_TRAILER}:", re.M)


def is_infrastructure(message: str) -> bool:
    """An infrastructure commit of the mirror (workflows): the trailer at a line's start, read
    the same way by verify, the release scan and the manifest."""
    return _INFRASTRUCTURE_RE.search(message) is not None


ADAPTED_TRAILER = "Stablectl-Adapted"
_ADAPTED_RE = re.compile(
    rf"^{ADAPTED_TRAILER}:[ \t]*([0-9a-fA-F]{{7,40}})[ \t]+\((\d+) lines?"
    r"(?:; interdiff ([0-9a-f]{64}))?(?:; reviewed in #(\d+))?\)[ \t]*$",
    re.M,
)


@dataclass(frozen=True)
class Adapted:
    """A backport's recorded adaptation: the upstream commit it adapts, the size and SHA-256
    of the exact interdiff (re-pick → commit, `gitops.provenance`), and the PR where a
    maintainer approved exactly that interdiff."""

    source: str
    lines: int
    pr: int | None
    interdiff: str | None = None

    def trailer(self) -> str:
        digest = f"; interdiff {self.interdiff}" if self.interdiff else ""
        pr = f"; reviewed in #{self.pr}" if self.pr is not None else ""
        return f"{ADAPTED_TRAILER}: {self.source} ({self.lines} lines{digest}{pr})"


def adapted_message(message: str, a: Adapted) -> str:
    """The message with its adaptation recorded (an earlier record replaced)."""
    message = _ADAPTED_RE.sub("", message)
    return _append_trailer(message, a.trailer())


def adapted_of(message: str) -> Adapted | None:
    m = _ADAPTED_RE.search(message)
    if not m:
        return None
    return Adapted(
        m.group(1).lower(),
        int(m.group(2)),
        int(m.group(4)) if m.group(4) else None,
        m.group(3),
    )


DOWNSTREAM_TRAILER = "Stablectl-Downstream"
_DOWNSTREAM_RE = re.compile(rf"^{DOWNSTREAM_TRAILER}:[ \t]*(.+?)[ \t]*$", re.M)


def downstream_trailer(source: str, patch: str) -> str:
    """Where an adaptation came from: a published patch (controller/downstream.py)."""
    return f"{DOWNSTREAM_TRAILER}: {source}: {patch}"


def downstream_of(message: str) -> str:
    """The downstream source an adaptation names ("" for none)."""
    m = _DOWNSTREAM_RE.search(message)
    return m.group(1) if m else ""


def prerequisite_of(message: str) -> str | None:
    """The fix a commit was picked as a prerequisite for (its trailer), if any."""
    m = re.search(rf"^{PREREQUISITE_TRAILER}:\s*([0-9a-fA-F]{{7,40}})\s*$", message, re.M)
    return m.group(1).lower() if m else None


def backport_title(series_branch: str, message: str) -> str:
    """CPython-style backport title: ``[3.11.2-stable] gh-N: subject (GH-N)``."""
    subject = message.splitlines()[0].strip() if message.strip() else ""
    subject = strip_branch_prefix(subject)
    m = re.search(r"\(#(\d+)\)\s*$", subject)
    if m:
        subject = subject[: m.start()].rstrip() + f" (GH-{m.group(1)})"
    return f"[{series_branch}] {subject}"
