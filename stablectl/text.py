"""Text from elsewhere, made harmless where stablectl writes it.

Upstream's commit messages and NEWS entries, forge comments and PR titles are data: they reach
PR bodies, release notes, feeds and terminals. Two things must never survive the trip:
- **marker syntax** (`<!--`, `-->`): stablectl hides machine-readable markers in HTML comments
  of the bodies it writes, so text from elsewhere must not open or close one;
- **control characters** (C0 but tab and newline, DEL, C1, and so ESC): on a terminal they
  recolour, move the cursor, retitle the window or plant OSC 8 links.
Text stablectl wrote itself (its markers) is `Trusted` and passes through untouched.
"""

from __future__ import annotations

import re

from markupsafe import Markup

# C0 controls but \t and \n, DEL, and C1 (which includes CSI, OSC and so ESC's 8-bit forms).
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class Trusted(str):
    """Text stablectl rendered itself (a marker): rendered as is."""

    __slots__ = ()


def printable(text: str) -> str:
    """`text` without control characters (ESC, BEL, CR, C1, …); tabs and newlines kept."""
    return _CONTROLS.sub("", text)


def neutralise(value: object) -> object:
    """What a template may print of `value`: `Trusted` text as is; other text without control
    characters and with HTML comment delimiters defused (`<!--` → `&lt;!--`, `-->` → `--&gt;`,
    which Markdown shows as written); anything else unchanged."""
    if isinstance(value, Trusted | Markup) or not isinstance(value, str):
        return value
    return printable(value).replace("<!--", "&lt;!--").replace("-->", "--&gt;")
