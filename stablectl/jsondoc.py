"""The one loose type: a JSON object as stablectl writes it out (plan --json, status.json, the
release manifest, OSV records, the verify report). Its shape is documented where it is written
(docs/plan-json.md, docs/feeds.md, docs/releases.md, docs/verify.md), not in the type."""

from __future__ import annotations

from typing import Any

JSONDoc = dict[str, Any]
