"""Flag rules: which of the policy's rules flag a commit, and why (one reason per condition)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from stablectl.controller.advisories import AdvisoryIndex
from stablectl.controller.selection.model import FlagHit
from stablectl.forge.base import UpstreamIssue
from stablectl.gitops.scan import CommitFacts
from stablectl.policy import FlagRule, IssuesRule

LabeledPRs = Callable[[str], set[int]]  # label -> upstream PR numbers carrying it
NoteLookup = Callable[[str, str], str | None]
# an issues condition -> the upstream issues its searches found, by number
IssueLookup = Callable[[IssuesRule], Mapping[int, UpstreamIssue]]
CVE = re.compile(r"\bCVE-\d{4}-\d{4,}\b")


def gh_issues(facts: CommitFacts) -> list[int]:
    """The GitHub issue numbers a commit names (`gh-N`; bpo numbers are not GitHub's)."""
    return [int(i[3:]) for i in facts.info.issues if i.startswith("gh-")]


def issue_hit(rule: IssuesRule, facts: CommitFacts, issues: Mapping[int, UpstreamIssue]) -> str:
    """Why one of the issues the commit names matches the condition now ("" if none does)."""
    for n in gh_issues(facts):
        issue = issues.get(n)
        why = rule.matches(issue.title, issue.labels) if issue is not None else None
        if issue is not None and why is not None:
            return f"issue gh-{n} {issue.title!r} ({why})"
    return ""


def rule_named(rules: Sequence[FlagRule], name: str) -> FlagRule:
    return next(r for r in rules if r.name == name)


def evaluate_flags(
    facts: CommitFacts,
    rules: Sequence[FlagRule],
    *,
    note_of: NoteLookup | None = None,
    labels: set[str] | None = None,
    advisories: Mapping[str, AdvisoryIndex] | None = None,
    issues: IssueLookup | None = None,
) -> list[FlagHit]:
    """Which rules flag this commit, and why. Conditions in one rule must all match.

    `labels` are the upstream PR's labels and `issues` reads the upstream issues an issues
    condition searches for; None means "not known here": those conditions are then assumed
    to match (an issues condition: if the commit names a `gh-N` issue at all) and left for the
    caller to check (see `Selector`).
    """
    hits: list[FlagHit] = []
    for rule in rules:
        reasons = _reasons(
            rule, facts, note_of=note_of, labels=labels, advisories=advisories, issues=issues
        )
        if reasons is not None:
            hits.append(FlagHit(rule.name, facts.sha, "; ".join(reasons), rule.security))
    return hits


def _reasons(
    rule: FlagRule,
    facts: CommitFacts,
    *,
    note_of: NoteLookup | None,
    labels: set[str] | None,
    advisories: Mapping[str, AdvisoryIndex] | None,
    issues: IssueLookup | None,
) -> list[str] | None:
    """One reason per condition of `rule` the commit meets; None as soon as one fails."""
    reasons: list[str] = []
    checks: list[Callable[[], str | None]] = [
        lambda: _listed(rule, facts),
        lambda: _touches(rule, facts),
        lambda: _message(rule, facts),
        lambda: _trailers(rule, facts),
        lambda: _note(rule, facts, note_of),
        lambda: _advisory(rule, facts, advisories),
        lambda: _label(rule, labels),
        lambda: _issue(rule, facts, issues),
    ]
    for check in checks:
        why = check()
        if why is None:
            return None
        if why:
            reasons.append(why)
    return reasons


# Each condition: None = not met; "" = not part of the rule (or met without words); else why.


def _listed(rule: FlagRule, facts: CommitFacts) -> str | None:
    if rule.commits is None:
        return ""
    # A listed SHA names a fix: the commit itself, or one whose trailer names it.
    named = (facts.sha, *facts.info.cherry_picked_from)
    sha = next((n for c in rule.commits for n in named if n.startswith(c.lower())), None)
    if sha is None:
        return None
    return "listed" if sha == facts.sha else f"backport of listed {sha[:10]}"


def _touches(rule: FlagRule, facts: CommitFacts) -> str | None:
    if rule.paths is None:
        return ""
    path = next((p for p in facts.written_paths if rule.path_matches(p)), None)
    return f"touches {path}" if path is not None else None


def _message(rule: FlagRule, facts: CommitFacts) -> str | None:
    if rule.message is None:
        return ""
    m = re.search(rule.message, facts.message)
    return f"message matches {m.group(0)!r}" if m else None


def _trailers(rule: FlagRule, facts: CommitFacts) -> str | None:
    if rule.trailers is None:
        return ""
    have = {k.lower(): v for k, v in facts.info.trailers}
    found = []
    for key, pattern in rule.trailers.items():
        value = have.get(key.lower())
        if value is None or not re.search(pattern, value):
            return None
        found.append(f"{key}: {value}")
    return "; ".join(found)


def _note(rule: FlagRule, facts: CommitFacts, note_of: NoteLookup | None) -> str | None:
    if rule.notes is None:
        return ""
    text = note_of(rule.notes.ref, facts.sha) if note_of else None
    m = re.search(rule.notes.match, text) if text else None
    return f"note {m.group(0)!r}" if m else None


def _advisory(
    rule: FlagRule, facts: CommitFacts, advisories: Mapping[str, AdvisoryIndex] | None
) -> str | None:
    if rule.advisories is None:
        return ""
    idx = (advisories or {}).get(rule.name)
    info = facts.info
    found = (
        idx.match(facts.sha, info.cherry_picked_from, info.issues, info.pr)
        if idx is not None
        else None
    )
    if found is None:
        return None
    why, advs = found
    return "advisory " + ", ".join(a.label() for a in advs) + f": {why}"


def _label(rule: FlagRule, labels: set[str] | None) -> str | None:
    if rule.labels is None or labels is None:
        return ""  # not known here: the caller checks it (see Selector)
    hit = sorted(labels & set(rule.labels))
    return f"label {hit[0]}" if hit else None


def _issue(rule: FlagRule, facts: CommitFacts, issues: IssueLookup | None) -> str | None:
    if rule.issues is None:
        return ""
    if issues is None:
        return "" if gh_issues(facts) else None
    return issue_hit(rule.issues, facts, issues(rule.issues)) or None


class ForgeConditions:
    """Label and issue conditions, checked against the forge for the commits a summary left
    pending (one label lookup per label and run; the issue lookup caches by itself)."""

    def __init__(
        self, rules: Sequence[FlagRule], labeled_prs: LabeledPRs | None, issues: IssueLookup | None
    ) -> None:
        self.rules = rules
        self.labeled_prs = labeled_prs
        self.issues = issues
        self._labeled: dict[str, set[int]] = {}

    def hit(
        self, rule_name: str, sha: str, facts: CommitFacts | None, pr: int | None
    ) -> FlagHit | None:
        rule = rule_named(self.rules, rule_name)
        why: list[str] = []
        if rule.labels is not None:
            label = next((lb for lb in rule.labels if pr is not None and pr in self._prs(lb)), None)
            if label is None:
                return None
            why.append(f"label {label}")
        if rule.issues is not None:
            hit = (
                issue_hit(rule.issues, facts, self.issues(rule.issues))
                if facts is not None and self.issues is not None
                else ""
            )
            if not hit:
                return None
            why.append(hit)
        return FlagHit(rule_name, sha, "; ".join(why), rule.security)

    def _prs(self, label: str) -> set[int]:
        if label not in self._labeled:
            self._labeled[label] = self.labeled_prs(label) if self.labeled_prs else set()
        return self._labeled[label]

    def missing(self) -> list[str]:
        """Rules that could not be evaluated: they need a forge this run does not have."""
        out = []
        for kind, lookup, names in (
            ("label", self.labeled_prs, [r.name for r in self.rules if r.labels]),
            ("issue", self.issues, [r.name for r in self.rules if r.issues]),
        ):
            if lookup is None and names:
                out.append(f"{kind} rules need the forge: {', '.join(names)} not evaluated")
        return out
