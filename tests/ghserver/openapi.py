"""GitHub's published REST description (npm `@octokit/openapi`): complete example objects
for the test server, and validation of every answer it gives (openapi-core)."""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

ROOT = Path(__file__).resolve().parents[2]
SPEC_PACKAGE = "@octokit/openapi"
DEFAULT_SPEC = ROOT / ".ci" / "node_modules" / SPEC_PACKAGE / "generated" / "api.github.com.json"


def spec_path() -> Path:
    p = Path(os.environ.get("STABLECTL_GITHUB_OPENAPI", DEFAULT_SPEC))
    if not p.exists():
        raise RuntimeError(
            f"GitHub's OpenAPI description is missing ({p}); install it with "
            "`npm ci --prefix .ci` (bash .ci/run does) or set STABLECTL_GITHUB_OPENAPI"
        )
    return p


class Spec:
    def __init__(self, path: Path) -> None:
        self.raw: dict[str, Any] = json.loads(path.read_text())
        _nullable_enums(self.raw)
        from openapi_core import Config

        self.openapi = OpenAPI.from_dict(self.raw, config=Config(spec_validator_cls=None))
        self._templates = [
            (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", p) + "$"), p) for p in self.raw["paths"]
        ]
        # A last parameter may hold slashes (git/refs/{ref} with ref = heads/a/b).
        self._greedy = [
            (
                re.compile(
                    "^" + re.sub(r"\{[^}]+\}$", ".+", re.sub(r"\{[^}]+\}(?=/)", "[^/]+", p)) + "$"
                ),
                p,
            )
            for p in self.raw["paths"]
        ]
        self.version = self.raw["info"]["version"]

    # ---------------------------------------------------------- schemas

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            parts = node["$ref"].lstrip("#/").split("/")
            cur: Any = self.raw
            for part in parts:
                cur = cur[part]
            node = cur
        return node

    def template(self, path: str) -> str:
        # Prefer the most literal template (e.g. /releases/tags/{tag} over /releases/{id}).
        matches = [t for rx, t in self._templates if rx.match(path)]
        if not matches:
            greedy = [t for rx, t in self._greedy if rx.match(path)]
            if greedy:
                return max(greedy, key=lambda t: len(re.sub(r"\{[^}]+\}", "", t)))
        if not matches:
            raise KeyError(f"no operation in GitHub's description matches {path}")
        return min(matches, key=lambda t: t.count("{"))

    def response_schema(self, path: str, method: str, status: int) -> dict[str, Any]:
        op = self.raw["paths"][self.template(path)][method.lower()]
        resp = self.resolve(op["responses"][str(status)])
        return self.resolve(resp["content"]["application/json"]["schema"])

    def item_schema(
        self, path: str, method: str, status: int, key: str | None = None
    ) -> dict[str, Any]:
        schema = self.response_schema(path, method, status)
        if key is not None:
            schema = self.resolve(schema["properties"][key])
        return self.resolve(schema["items"])

    def synth(self, schema: dict[str, Any], base: str, depth: int = 0) -> Any:
        """A complete value for `schema`: every property present, nullable ones null."""
        schema = self.resolve(schema)
        if "allOf" in schema:
            merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
            for part in schema["allOf"]:
                part = self.resolve(part)
                merged["properties"].update(part.get("properties", {}))
                merged["required"] += part.get("required", [])
            return self.synth(merged, base, depth)
        for key in ("oneOf", "anyOf"):
            if key in schema:
                options = [self.resolve(o) for o in schema[key]]
                options = [o for o in options if o.get("type") != "null"] or options
                return self.synth(options[0], base, depth)
        if "enum" in schema:
            return schema["enum"][0]
        t = schema.get("type")
        if t == "object" or "properties" in schema:
            out: dict[str, Any] = {}
            for name, sub in schema.get("properties", {}).items():
                sub_r = self.resolve(sub)
                if sub_r.get("nullable") or depth > 8:
                    out[name] = None if sub_r.get("nullable") else self.synth(sub_r, base, 99)
                else:
                    out[name] = self.synth(sub_r, base, depth + 1)
            return out
        if t == "array":
            n = schema.get("minItems", 0)
            return [self.synth(schema["items"], base, depth + 1) for _ in range(n)]
        if t == "integer":
            return max(1, schema.get("minimum", 1))
        if t == "number":
            return 1.0
        if t == "boolean":
            return False
        fmt = schema.get("format")
        if fmt == "date-time":
            return "2026-01-01T00:00:00Z"
        if fmt == "uri" or fmt == "uri-template":
            return f"{base}/unused"
        if fmt == "email":
            return "nobody@example.com"
        return "x"

    # ---------------------------------------------------------- validation

    def _for_matching(self, path: str) -> str:
        """openapi-core matches a path parameter within one segment; GitHub's `git/refs/{ref}`
        takes `heads/a/b`. Encode the slashes of such a trailing parameter."""
        if any(rx.match(path) for rx, _ in self._templates):
            return path
        template = self.template(path)
        fixed = template.rsplit("/", 1)[0].count("/")
        parts = path.split("/")
        return "/".join([*parts[: fixed + 1], "%2F".join(parts[fixed + 1 :])])

    def validate_response(
        self,
        host: str,
        method: str,
        path: str,
        query: dict[str, str],
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str],
    ) -> None:
        self.openapi.validate_response(
            _Request(host, method, self._for_matching(path), query, b"", "application/json"),
            _Response(status, body, content_type, headers),
        )

    def documents(self, method: str, path: str, status: int) -> bool:
        try:
            op = self.raw["paths"][self.template(path)][method.lower()]
        except KeyError:
            return False
        return str(status) in op["responses"]

    def validate_request(
        self, host: str, method: str, path: str, query: dict[str, str], body: bytes, ctype: str
    ) -> None:
        self.openapi.validate_request(
            _Request(host, method, self._for_matching(path), query, body, ctype)
        )


class _Request:
    def __init__(
        self,
        host: str,
        method: str,
        path: str,
        query: dict[str, str],
        body: bytes,
        content_type: str,
    ) -> None:
        self.host_url = host
        self.path = path
        self.method = method.lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(query),
            header=Headers(),
            cookie=ImmutableMultiDict(),
            path={},
        )
        self.body = body or None
        self.content_type = content_type

    @property
    def full_url_pattern(self) -> str:
        return self.host_url + self.path


class _Response:
    def __init__(self, status: int, body: bytes, content_type: str, headers: dict[str, str]):
        self.status_code = status
        self.data = body
        self.content_type = content_type
        self.headers = Headers(headers)


def _nullable_enums(node: Any) -> None:
    """GitHub's description marks fields such as a check run's `conclusion` `nullable` with an
    `enum` that lacks null, and GitHub answers null there (a run in progress); OpenAPI 3.0.3
    says the enum must list null for that to validate. Add it, so real answers validate."""
    if isinstance(node, dict):
        if node.get("nullable") and isinstance(node.get("enum"), list) and None not in node["enum"]:
            node["enum"].append(None)
        for v in node.values():
            _nullable_enums(v)
    elif isinstance(node, list):
        for v in node:
            _nullable_enums(v)


@lru_cache(maxsize=1)
def load_spec() -> Spec:
    return Spec(spec_path())
