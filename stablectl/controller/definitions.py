"""Definitions: which function, class or C function (or table) a fix's hunk sits in, and
whether the line's tree defines it anywhere. The first of the two proofs an absent-code
verdict needs (applicability.py): code upstream changed inside `_iglob(pathname, root_dir,
dir_fd, recursive, dironly)` is not on a line whose `glob.py` has no such function, wherever
that line keeps its modules.

A Python definition is its name and its parameters (a signature another version changed is
not the same code); a C one, its name (a function, a macro, a table), declared or defined. A
hunk at module level sits in its file: absent only when no file of that name exists on the
line at all. Anything this cannot read (other languages, a header it cannot parse) counts as
present: an absent-code verdict is never reached through what was not understood."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

import pygit2

from stablectl.errors import GitError
from stablectl.gitops.git import git, output

_PY_DEF = re.compile(r"^(\s*)(?:async\s+)?(def|class)\s+([A-Za-z_]\w*)")
_C_NAME = re.compile(r"([A-Za-z_]\w*)\s*(?:\(|\[|=)")
_C_SUFFIXES = (".c", ".h")
_HEADER_LINES = 12


@dataclass(frozen=True)
class Definition:
    """What a hunk sits in: `kind` def, class or c (a C function, macro or table)."""

    kind: str
    name: str
    params: tuple[str, ...] | None  # a Python function's parameter names (None: unread)
    path: str  # the file upstream changed
    owner: str = ""  # a method's class: `__hash__(self)` alone is defined everywhere

    def describe(self) -> str:
        if self.kind == "c":
            return f"`{self.name}` ({self.path})"
        if self.kind == "class":
            return f"`class {self.name}` ({self.path})"
        args = ", ".join(self.params) if self.params is not None else "…"
        owner = f"{self.owner}." if self.owner else ""
        return f"`{owner}{self.name}({args})` ({self.path})"


def enclosing(path: str, lines: Sequence[str], index: int) -> Definition | None:
    """The definition line `index` (0-based) of `path` (as `lines`) sits in; None at module
    level or in a language this does not read."""
    if not 0 <= index < len(lines):
        return None
    if path.endswith(".py"):
        return _enclosing_py(path, lines, index)
    if path.endswith(_C_SUFFIXES):
        return _enclosing_c(path, lines, index)
    return None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _enclosing_py(path: str, lines: Sequence[str], index: int) -> Definition | None:
    own = _PY_DEF.match(lines[index])
    if own:  # the hunk changes a definition's own header
        return _py_definition(path, lines, index)
    threshold = _indent(lines[index]) if lines[index].strip() else 1 << 30
    for j in range(index - 1, -1, -1):
        text = lines[j]
        if not text.strip() or text.lstrip().startswith(("#", "@")):
            continue
        ind = _indent(text)
        if ind >= threshold:
            continue
        if _PY_DEF.match(text):
            return _py_definition(path, lines, j)
        if ind == 0:
            return None  # module-level code
        threshold = ind
    return None


def _py_definition(path: str, lines: Sequence[str], j: int) -> Definition:
    m = _PY_DEF.match(lines[j])
    assert m is not None
    kind, name = m.group(2), m.group(3)
    if kind == "class":
        return Definition("class", name, None, path)
    params = py_params(lines[j : j + _HEADER_LINES])
    return Definition("def", name, params, path, _owner(lines, j, len(m.group(1))))


def _owner(lines: Sequence[str], j: int, indent: int) -> str:
    """The class a definition indented by `indent` at line `j` is a method of ("": none)."""
    for k in range(j - 1, -1, -1):
        text = lines[k]
        if not text.strip() or text.lstrip().startswith(("#", "@")):
            continue
        ind = _indent(text)
        if ind >= indent:
            continue
        m = _PY_DEF.match(text)
        return m.group(3) if m is not None and m.group(2) == "class" else ""
    return ""


def py_params(header: Sequence[str]) -> tuple[str, ...] | None:
    """The parameter names of the `def` that starts `header` (None: not readable)."""
    text = ""
    for line in header:
        text += line.strip() + " "
        if line.rstrip().endswith(":"):
            break
    text = re.sub(r"^async\s+", "", text.strip())
    try:
        tree = ast.parse(text + "\n    pass\n")
    except SyntaxError:
        return None
    node = tree.body[0] if tree.body else None
    if not isinstance(node, ast.FunctionDef):
        return None
    a = node.args
    names = [x.arg for x in (*a.posonlyargs, *a.args)]
    if a.vararg is not None:
        names.append("*" + a.vararg.arg)
    names += [x.arg for x in a.kwonlyargs]
    if a.kwarg is not None:
        names.append("**" + a.kwarg.arg)
    return tuple(names)


def _enclosing_c(path: str, lines: Sequence[str], index: int) -> Definition | None:
    for j in range(index, -1, -1):
        text = lines[j]
        if text.startswith("}"):
            return None if j < index else _c_before(path, lines, j)
        opens = (text[:1].isalpha() or text[:1] == "_") and text.rstrip().endswith("{")
        if text.startswith("{") or opens:
            return _c_header(path, lines, j)
    return None


def _c_before(path: str, lines: Sequence[str], j: int) -> Definition | None:
    """A hunk starting on a closing brace ends the definition above it."""
    return _enclosing_c(path, lines, j - 1) if j > 0 else None


def _c_header(path: str, lines: Sequence[str], j: int) -> Definition | None:
    """The name of the definition whose body opens on line `j`."""
    parts = [lines[j]] if not lines[j].startswith("{") else []
    k = j - 1
    while k >= 0 and len(parts) < _HEADER_LINES:
        text = lines[k]
        stripped = text.strip()
        k -= 1
        if not parts and stripped.startswith("/*") and stripped.endswith("*/"):
            continue  # Argument Clinic's end marker between a header and its body
        if not stripped or stripped.endswith((";", "}")) or stripped.startswith(("#", "/*", "*")):
            break
        parts.insert(0, text)
    m = _C_NAME.search(" ".join(p.strip() for p in parts))
    if m is None or m.group(1) in ("if", "for", "while", "switch", "return", "sizeof"):
        return None
    return Definition("c", m.group(1), None, path)


def undefined(
    repo: pygit2.Repository, tip: str, defs: Iterable[Definition]
) -> tuple[list[Definition], list[str]]:
    """Of `defs`, those the tree of `tip` defines nowhere, and for the others where it does
    (one "PATH:LINE" each). A git error counts every definition as present."""
    todo = list(dict.fromkeys(defs))
    found: dict[Definition, str] = {}
    py = [d for d in todo if d.kind in ("def", "class")]
    c = [d for d in todo if d.kind == "c"]
    try:
        if py:
            owners = {d.owner for d in py if d.owner}
            names = "|".join(sorted({re.escape(x) for d in py for x in (d.name, d.owner) if x}))
            pattern = rf"^\s*(async\s+)?(def|class)\s+({names})\b"
            hits = _grep(repo, tip, pattern, ["*.py"])
            classes = {
                (path, m.group(3))
                for path, _line, text in hits
                if (m := _PY_DEF.match(text)) and m.group(2) == "class" and m.group(3) in owners
            }
            for path, line, text in hits:
                for d in py:
                    if d.owner and (path, d.owner) not in classes:
                        continue
                    if d not in found and _py_match(repo, tip, d, path, line, text):
                        found[d] = f"{path}:{line}"
        if c:
            names = "|".join(sorted({re.escape(d.name) for d in c}))
            pattern = rf"^([A-Za-z_#][A-Za-z0-9_ \t*]*[ \t*])?({names})[ \t]*(\(|\[|=)"
            for path, line, text in _grep(repo, tip, pattern, ["*.c", "*.h"]):
                for d in c:
                    if d not in found and re.search(rf"\b{re.escape(d.name)}\b", text):
                        found[d] = f"{path}:{line}"
    except GitError:
        return [], ["the line's tree could not be searched"]
    return [d for d in todo if d not in found], list(found.values())


def _grep(
    repo: pygit2.Repository, tip: str, pattern: str, specs: list[str]
) -> list[tuple[str, int, str]]:
    proc = git(
        ["grep", "-n", "-I", "-E", "-e", pattern, tip, "--", *specs],
        git_dir=repo.path,
        check=False,
        what="git grep",
    )
    if proc.returncode not in (0, 1):
        raise GitError("git grep: the line's tree could not be searched")
    out = []
    prefix = f"{tip}:"
    for raw in output(proc).splitlines():
        rest = raw[len(prefix) :] if raw.startswith(prefix) else raw
        path, _, tail = rest.partition(":")
        num, _, text = tail.partition(":")
        if num.isdigit():
            out.append((path, int(num), text))
    return out


def _py_match(
    repo: pygit2.Repository, tip: str, d: Definition, path: str, line: int, text: str
) -> bool:
    m = _PY_DEF.match(text)
    if m is None or m.group(3) != d.name or m.group(2) != d.kind:
        return False
    if d.kind == "class" or d.params is None:
        return True
    try:
        blob = repo.revparse_single(f"{tip}:{path}").peel(pygit2.Blob)
    except (KeyError, ValueError):
        return True
    lines = bytes(blob.data).decode("utf-8", "replace").splitlines()
    params = py_params(lines[line - 1 : line - 1 + _HEADER_LINES])
    return params is None or params == d.params


def file_anywhere(tree: pygit2.Tree, path: str) -> str | None:
    """A file of the same name as `path` anywhere in `tree` (its path), or None."""
    name = PurePosixPath(path).name
    stack: list[tuple[str, pygit2.Tree]] = [("", tree)]
    while stack:
        prefix, t = stack.pop()
        for e in t:
            if e.name is None:
                continue
            full = f"{prefix}{e.name}"
            if e.type_str == "tree":
                sub = t[e.name]
                assert isinstance(sub, pygit2.Tree)
                stack.append((full + "/", sub))
            elif e.name == name:
                return full
    return None
