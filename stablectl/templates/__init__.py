"""jinja2 templates for every text stablectl renders (PR bodies, comments, notes, workflows)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jinja2


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("stablectl", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # Markdown and YAML, not HTML; inputs are escaped where they land
    )
    env.filters["mdcell"] = md_cell
    env.filters["quote"] = md_quote
    return env


def md_cell(text: object) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def md_quote(text: object) -> str:
    """Text as a Markdown block quote."""
    return "\n".join(f"> {line}".rstrip() for line in str(text).splitlines())


def render(name: str, **context: Any) -> str:
    return environment().get_template(name).render(**context)
