"""Loading a policy file: YAML composed with the position of every node, validated by the
model, each problem reported as ``FILE:LINE:COL: field.path: message``. Scalars that YAML 1.1
resolves to numbers or booleans are refused wherever the model wants a string (``3.10`` would
otherwise become ``3.1``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from stablectl.errors import PolicyError
from stablectl.policy.model import Policy


@dataclass(frozen=True)
class Pos:
    line: int
    col: int
    tag: str
    text: str


Path_ = tuple[str | int, ...]

_NON_STRING_TAGS = {
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:int": "a number",
    "tag:yaml.org,2002:bool": "a boolean",
    "tag:yaml.org,2002:null": "null",
}


class _Builder:
    """Turns a composed YAML node tree into plain data, remembering each node's position."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.positions: dict[Path_, Pos] = {}
        self.key_positions: dict[Path_, Pos] = {}
        self.problems: list[str] = []
        self._constructor = yaml.SafeLoader("")

    def build(self, node: yaml.Node, path: Path_ = ()) -> Any:
        mark = node.start_mark
        text = node.value if isinstance(node, yaml.ScalarNode) else ""
        self.positions[path] = Pos(mark.line + 1, mark.column + 1, node.tag, str(text))
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self._constructor.construct_object(key_node, deep=True)
                key_s = str(key) if not isinstance(key, str) else key
                if key is True and key_node.value in ("on", "yes", "y", "On", "Yes"):
                    key_s = key_node.value
                kpath = (*path, key_s)
                km = key_node.start_mark
                self.key_positions[kpath] = Pos(km.line + 1, km.column + 1, key_node.tag, key_s)
                if key_s in out:
                    self.problems.append(
                        f"{self.filename}:{km.line + 1}:{km.column + 1}: "
                        f"{_fmt_path(kpath)}: duplicate key"
                    )
                    continue
                out[key_s] = self.build(value_node, kpath)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
        return self._constructor.construct_object(node, deep=True)


def _fmt_path(path: Sequence[str | int]) -> str:
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + p
    return out or "(top level)"


def _message(err: ErrorDetails, pos: Pos | None) -> str:
    kind = err["type"]
    if kind == "string_type" and pos is not None and pos.tag in _NON_STRING_TAGS:
        what = _NON_STRING_TAGS[pos.tag]
        return (
            f"must be a string, but YAML reads {pos.text!r} as {what}"
            f' ({err["input"]!r}); quote it: "{pos.text}"'
        )
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "field required"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def _yaml_problem(filename: str, e: yaml.MarkedYAMLError) -> PolicyError:
    mark = e.problem_mark or e.context_mark
    where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else f"{filename}:1:1"
    return PolicyError([f"{where}: (yaml): {e.problem or e}"])


def load_policy_text(text: str, filename: str = "<policy>") -> Policy:
    """Parse and validate policy YAML; raise PolicyError listing every problem."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        raise _yaml_problem(filename, e) from None
    except yaml.reader.ReaderError as e:
        # A character YAML does not allow (found by fuzzing): locate it by its offset.
        before = text[: e.position]
        line, col = before.count("\n") + 1, e.position - (before.rfind("\n") + 1) + 1
        raise PolicyError(
            [f"{filename}:{line}:{col}: (yaml): character {e.character!r} is not allowed in YAML"]
        ) from None
    except yaml.YAMLError as e:
        raise PolicyError([f"{filename}:1:1: (yaml): {e}"]) from None
    if node is None:
        raise PolicyError([f"{filename}:1:1: (top level): the policy file is empty"])
    builder = _Builder(filename)
    try:
        data = builder.build(node)
    except yaml.MarkedYAMLError as e:
        raise _yaml_problem(filename, e) from None
    except yaml.YAMLError as e:
        raise PolicyError([f"{filename}:1:1: (yaml): {e}"]) from None
    if not isinstance(data, dict):
        raise PolicyError([f"{filename}:1:1: (top level): a policy is a mapping of fields"])
    problems = list(builder.problems)
    try:
        policy = Policy.model_validate(data)
    except ValidationError as e:
        for err in e.errors():
            loc: Path_ = tuple(p for p in err["loc"] if isinstance(p, str | int))
            # Pydantic appends union/validator tags to loc in some cases; trim to a known node.
            pos = _lookup(builder, loc, err["type"])
            where = f"{filename}:{pos.line}:{pos.col}" if pos else f"{filename}:1:1"
            problems.append(f"{where}: {_fmt_path(loc)}: {_message(err, pos)}")
    if problems:
        raise PolicyError(problems)
    return policy


def _lookup(builder: _Builder, loc: Path_, kind: str) -> Pos | None:
    if kind == "extra_forbidden" and loc in builder.key_positions:
        return builder.key_positions[loc]
    probe = loc
    while probe:
        if probe in builder.positions:
            return builder.positions[probe]
        probe = probe[:-1]
    return builder.positions.get(())


def load_policy(path: str | Path) -> Policy:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError([f"{p}: no such policy file"]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise PolicyError([f"{p}: cannot read policy: {e}"]) from None
    return load_policy_text(text, str(p))


def semantic_error(path: str | Path, problems: list[tuple[Path_, str]]) -> PolicyError:
    """A PolicyError whose lines point into the policy file."""
    positions = policy_positions(path)
    return PolicyError([format_problem(str(path), positions, loc, m) for loc, m in problems])


def policy_positions(path: str | Path) -> dict[Path_, Pos]:
    """Positions of every node of a (valid YAML) policy file, for semantic error messages."""
    p = Path(path)
    node = yaml.compose(p.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    b = _Builder(str(p))
    if node is not None:
        b.build(node)
    return b.positions


def format_problem(filename: str, positions: dict[Path_, Pos], loc: Path_, message: str) -> str:
    pos = next((positions[loc[:i]] for i in range(len(loc), -1, -1) if loc[:i] in positions), None)
    where = f"{filename}:{pos.line}:{pos.col}" if pos else filename
    return f"{where}: {_fmt_path(loc)}: {message}"


def json_schema() -> dict[str, Any]:
    schema = Policy.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "stablectl policy"
    return schema
