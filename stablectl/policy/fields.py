"""What every part of the policy model shares: the base model (unknown fields refused, frozen),
the name and SHA field types, the regular-expression check."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

SHA_RE = re.compile(r"^[0-9a-f]{7,40}$")

Name = Annotated[str, StringConstraints(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")]
Sha = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{7,40}$")]


class Model(BaseModel):
    """A policy section: unknown fields are refused, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def regex(pattern: str) -> str:
    """`pattern`, if it compiles (a field validator's check)."""
    try:
        re.compile(pattern)
    except re.error as e:
        raise ValueError(f"invalid regular expression {pattern!r}: {e}") from None
    return pattern
