"""jinja2 templates for every text stablectl renders (PR bodies, comments, notes, workflows)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jinja2

from stablectl.text import neutralise


def make_environment(
    folder: str, *, autoescape: bool = False, **delimiters: str
) -> jinja2.Environment:
    """A strict environment over a package template folder (`delimiters`: jinja2's
    *_start_string/*_end_string, for templates whose output uses `{{ }}` itself).
    Markdown and YAML templates escape their inputs where they land; HTML and XML ones
    (`autoescape=True`) escape every value."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("stablectl", folder),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=autoescape,
        # Every value printed is data unless stablectl marked it Trusted (its own markers).
        finalize=neutralise,
        **delimiters,  # type: ignore[arg-type]
    )


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = make_environment("templates")
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


@lru_cache(maxsize=1)
def markup_environment() -> jinja2.Environment:
    return make_environment("templates", autoescape=True)


def render_markup(name: str, **context: Any) -> str:
    """HTML and Atom templates: every value escaped."""
    return markup_environment().get_template(name).render(**context)
