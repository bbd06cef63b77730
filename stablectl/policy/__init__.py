"""The policy: a YAML file turned into a typed, validated model.

Pydantic does the validation (and gives `stablectl policy schema` a JSON Schema for free).
`series.py` says what is mirrored (upstream, the fork, the stable series), `rules.py` what
selection obeys (flag rules, exclusions, follow-ups, applicability, prerequisites), `model.py`
the `Policy` with the sections sync and release obey, `loader.py` reads a file and names the
FILE:LINE:COL of each problem. The names below are the package's interface.
"""

from stablectl.policy.loader import (
    Path_,
    Pos,
    format_problem,
    json_schema,
    load_policy,
    load_policy_text,
    policy_positions,
    semantic_error,
)
from stablectl.policy.model import (
    CI,
    DEFAULT_LABELS,
    GITHUB_ACTIONS_IDENTITY,
    LOCAL_CI_IDENTITY,
    REVIEW_FLOOR_HOURS,
    Approvals,
    Checks,
    Commands,
    ForgeSettings,
    Identities,
    Identity,
    Policy,
    Release,
    Signing,
    login_key,
)
from stablectl.policy.rules import (
    FOLLOW_UP_REFS,
    FOLLOW_UP_RULE,
    Applicability,
    Exclude,
    FlagRule,
    FollowUpRef,
    FollowUps,
    IssuesRule,
    NotesRule,
    Prerequisites,
)
from stablectl.policy.series import (
    PY27_RENAMES,
    BranchEnd,
    Downstream,
    Fork,
    Series,
    Upstream,
    base_version,
)

__all__ = [
    "CI",
    "DEFAULT_LABELS",
    "FOLLOW_UP_REFS",
    "FOLLOW_UP_RULE",
    "GITHUB_ACTIONS_IDENTITY",
    "LOCAL_CI_IDENTITY",
    "PY27_RENAMES",
    "REVIEW_FLOOR_HOURS",
    "Applicability",
    "Approvals",
    "BranchEnd",
    "Checks",
    "Commands",
    "Downstream",
    "Exclude",
    "FlagRule",
    "FollowUpRef",
    "FollowUps",
    "ForgeSettings",
    "Fork",
    "Identities",
    "Identity",
    "IssuesRule",
    "NotesRule",
    "Path_",
    "Policy",
    "Pos",
    "Prerequisites",
    "Release",
    "Series",
    "Signing",
    "Upstream",
    "base_version",
    "format_problem",
    "json_schema",
    "load_policy",
    "load_policy_text",
    "login_key",
    "policy_positions",
    "semantic_error",
]
