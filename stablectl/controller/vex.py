"""A CSAF 2.0 VEX document (`vex.json`) of what the mirror says about every CVE it knows.

Red Hat and SUSE publish VEX; ActiveState writes its "not affected" list by hand. A
distribution tracking the mirror reads, per line and per release, whether a CVE is fixed
(in which release), affected (a fix merged or in review, not released yet), under
investigation (its backport conflicts, or waits for one that does), or not affected, with
the justification the engine's verdict gives (docs/engine.md, Applicability):

- `vulnerable_code_not_present`: the code the fix changes is not on the line, or the fix
  changes only documentation there;
- `component_not_present`: the line's build profile does not build what the fix changes.

Products are each series' base version and each of its releases (`<project> 3.11.2`,
`<project> 3.11.2.1`, …). Every statement comes from the status document, which is itself
derived from upstream facts and the tags' ranges (status.py); the same status gives the same
document. Validated against the official CSAF 2.0 schema in the test suite.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from stablectl import __version__
from stablectl.controller.selection import VerdictKind
from stablectl.jsondoc import JSONDoc

VEX_NAME = "vex.json"


@dataclass
class _Status:
    fixed: list[str] = field(default_factory=list)
    known_affected: list[str] = field(default_factory=list)
    under_investigation: list[str] = field(default_factory=list)
    known_not_affected: list[str] = field(default_factory=list)
    flags: dict[str, list[str]] = field(default_factory=dict)  # label -> product ids
    threats: list[JSONDoc] = field(default_factory=list)
    remediations: list[JSONDoc] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # one line per series


def _pid(project: str, version: str) -> str:
    return f"{project}-{version}"


def _products(status: JSONDoc) -> tuple[list[JSONDoc], dict[str, list[str]]]:
    """The product tree's version branches, and each series' product ids (base first, then
    its releases oldest first)."""
    project = status["project"]
    branches: list[JSONDoc] = []
    ids: dict[str, list[str]] = {}
    for s in status["series"]:
        versions = [s["name"], *(r["version"] for r in s["releases"])]
        ids[s["name"]] = [_pid(project, v) for v in versions]
        for v in versions:
            branches.append(
                {
                    "category": "product_version",
                    "name": v,
                    "product": {"name": f"{project} {v}", "product_id": _pid(project, v)},
                }
            )
    return branches, ids


def _states(s: JSONDoc) -> dict[str, tuple[str, JSONDoc]]:
    """Per CVE, the series' strongest statement: released > merged > pending >
    not applicable (a NEWS clarification judged not applicable does not hide the fix)."""
    out: dict[str, tuple[str, JSONDoc]] = {}

    def put(cve: str, state: str, data: JSONDoc) -> None:
        rank = ["released", "merged", "pending", "not-applicable"]
        if cve not in out or rank.index(state) < rank.index(out[cve][0]):
            out[cve] = (state, data)

    for i, r in enumerate(s["releases"]):  # oldest first: the first release fixing it stays
        for c in r["cves"]:
            put(c, "released", {"index": i, **r})
    for f in s["merged_unreleased"]:
        for c in f["cves"]:
            put(c, "merged", f)
    for f in s["pending"]:
        for c in f["cves"]:
            put(c, "pending", f)
    for f in s["not_applicable"]:
        for c in f["cves"]:
            put(c, "not-applicable", f)
    return out


def _statement(
    st: _Status, state: str, data: JSONDoc, s: JSONDoc, ids: Sequence[str], project: str
) -> None:
    st.notes.append(f"{s['name']}: {_said(state, data, s)}")
    if state == "released":
        k = data["index"] + 1  # ids[0] is the base version
        st.fixed += ids[k:]
        if ids[:k]:
            st.known_affected += ids[:k]
            fix: JSONDoc = {
                "category": "vendor_fix",
                "details": f"Fixed in {project} {data['version']} (tag {data['tag']}).",
                "product_ids": list(ids[:k]),
            }
            if data.get("url"):
                fix["url"] = data["url"]
            st.remediations.append(fix)
    elif state == "merged":
        st.known_affected += ids
        st.remediations.append(
            {
                "category": "none_available",
                "details": f"The fix is merged on {s['branch']} and ships in its next release.",
                "product_ids": list(ids),
            }
        )
    elif state == "pending" and data.get("outcome") in (
        "new-clean",
        "new-clean-with-prerequisites",
    ):
        st.known_affected += ids
        pr = data.get("pr") or {}
        where = f" in {pr['url']}" if pr.get("url") else ""
        st.remediations.append(
            {
                "category": "none_available",
                "details": f"A backport to {s['branch']} is under review{where}.",
                "product_ids": list(ids),
            }
        )
    elif state == "pending":
        st.under_investigation += ids  # its backport conflicts, or waits for one that does
    else:
        st.known_not_affected += ids
        kind = data.get("verdict")
        label = (
            VerdictKind(kind).vex_justification
            if isinstance(kind, str)
            else "vulnerable_code_not_present"  # a verdict an older status did not record
        )
        st.flags.setdefault(label, []).extend(ids)
        st.threats.append(
            {
                "category": "impact",
                "details": f"Not applicable to {s['branch']}: {data['reason']}",
                "product_ids": list(ids),
            }
        )


def _said(state: str, data: JSONDoc, s: JSONDoc) -> str:
    if state == "released":
        return f"fixed in {data['version']}"
    if state == "merged":
        return f"fix merged on {s['branch']}, not released yet"
    if state == "pending":
        return f"backport pending ({data.get('outcome')})"
    return f"not applicable: {data['reason']}"


def _vulnerability(cve: str, st: _Status) -> JSONDoc:
    """One CVE's entry: the products in each state, the notes per line, the flags, threats
    and remediations its statements gave."""
    product_status: Mapping[str, list[str]] = {
        k: sorted(set(v))
        for k, v in (
            ("fixed", st.fixed),
            ("known_affected", st.known_affected),
            ("known_not_affected", st.known_not_affected),
            ("under_investigation", st.under_investigation),
        )
        if v
    }
    vuln: JSONDoc = {
        "cve": cve,
        "notes": [{"category": "description", "title": "Per line", "text": "; ".join(st.notes)}],
        "product_status": dict(product_status),
    }
    if st.flags:
        vuln["flags"] = [
            {"label": label, "product_ids": sorted(set(p))} for label, p in sorted(st.flags.items())
        ]
    if st.threats:
        vuln["threats"] = st.threats
    if st.remediations:
        vuln["remediations"] = st.remediations
    return vuln


def _document(project: str, when: str, namespace: str, publisher: str | None) -> JSONDoc:
    """The CSAF `document` section: publisher, summary, tracking."""
    return {
        "category": "csaf_vex",
        "csaf_version": "2.0",
        "publisher": {
            "category": "other",
            "name": publisher or f"{project} stable mirror (stablectl)",
            "namespace": namespace,
        },
        "title": f"{project} stable mirror: CVE status of every line",
        "notes": [
            {
                "category": "summary",
                "title": "What this document states",
                "text": "For every CVE the mirror knows, per line and release: fixed (in "
                "which release), affected (fix merged or in review), under investigation "
                "(its backport conflicts), or not affected, with the engine's reason.",
            }
        ],
        "tracking": {
            "id": f"{project}-stable-vex",
            "status": "interim",
            "version": "1",
            "initial_release_date": when,
            "current_release_date": when,
            "revision_history": [
                {"date": when, "number": "1", "summary": "Regenerated by stablectl."}
            ],
            "generator": {"engine": {"name": "stablectl", "version": __version__}},
        },
    }


def vex_document(status: JSONDoc, *, namespace: str, publisher: str | None = None) -> JSONDoc:
    """The CSAF 2.0 VEX document of a status document (`stablectl.status/1`)."""
    project = status["project"]
    branches, ids = _products(status)
    per_cve: dict[str, _Status] = {}
    for s in status["series"]:
        for cve, (state, data) in sorted(_states(s).items()):
            st = per_cve.setdefault(cve.upper(), _Status())
            _statement(st, state, data, s, ids[s["name"]], project)
    vulnerabilities = [_vulnerability(cve, per_cve[cve]) for cve in sorted(per_cve)]
    doc: JSONDoc = {
        "document": _document(project, status["generated"], namespace, publisher),
        "product_tree": {
            "branches": [
                {
                    "category": "vendor",
                    "name": publisher or f"{project} stable mirror",
                    "branches": [
                        {"category": "product_name", "name": project, "branches": branches}
                    ],
                }
            ]
        },
    }
    if vulnerabilities:
        doc["vulnerabilities"] = vulnerabilities
    return doc
