"""Which definition a hunk sits in (controller/definitions.py), read as CPython writes them."""

from __future__ import annotations

from pathlib import Path

from stablectl.controller.definitions import Definition, enclosing, py_params, undefined
from stablectl.gitops.history import History

C = """\
#include "Python.h"

static int counter = 0;

/*[clinic input]
os.system
[clinic start generated code]*/

static long
os_system_impl(PyObject *module, PyObject *command)
/*[clinic end generated code: output=290fc437dd4f33a0 input=86a58554ba6094af]*/
{
    long result;
    result = system(command);
    return result;
}

static PyMethodDef posix_methods[] = {
    {"system", os_system, METH_VARARGS},
    {NULL, NULL}
};
"""

PY = """\
import os

LIMIT = 10

class Parser:
    def feed(self, data,
             final=False):
        if data:
            for c in data:
                self.push(c)

    async def close(self, *, flush=True, **kw):
        return None
"""


def at(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines()) if needle in line)


def test_c_functions_clinic_headers_and_tables() -> None:
    lines = C.splitlines()
    assert enclosing("Modules/posixmodule.c", lines, at(C, "result = system")) == Definition(
        "c", "os_system_impl", None, "Modules/posixmodule.c"
    )
    got = enclosing("Modules/posixmodule.c", lines, at(C, '{"system"'))
    assert got is not None and got.name == "posix_methods"
    assert enclosing("Modules/posixmodule.c", lines, at(C, "static int counter")) is None
    closing = at(C, "return result") + 1  # the function's closing brace
    got = enclosing("Modules/posixmodule.c", lines, closing)
    assert got is not None and got.name == "os_system_impl"


def test_python_methods_with_their_parameters() -> None:
    lines = PY.splitlines()
    got = enclosing("Lib/parser.py", lines, at(PY, "self.push(c)"))
    assert got is not None and (got.kind, got.name, got.params) == (
        "def",
        "feed",
        ("self", "data", "final"),
    )
    assert got.owner == "Parser"
    assert got.describe() == "`Parser.feed(self, data, final)` (Lib/parser.py)"
    got = enclosing("Lib/parser.py", lines, at(PY, "return None"))
    assert got is not None and got.params == ("self", "flush", "**kw")
    assert enclosing("Lib/parser.py", lines, at(PY, "LIMIT")) is None  # module level
    assert enclosing("Doc/library/parser.rst", ["text"], 0) is None  # not read: never absent
    assert py_params(["def f(a, (b, c)):"]) is None  # Python 2 syntax: unread, so present


def test_a_method_is_defined_only_with_its_class(tmp_path: Path) -> None:
    """bpo-41004 on 2.7.18: `IPv4Interface.__hash__(self)` is not on the line, though many
    other classes there define a `__hash__(self)`."""
    h = History(tmp_path / "up.git")
    tip = h.commit(
        "main",
        "base",
        {
            "Lib/sets.py": "class BaseSet:\n    def __hash__(self):\n        return 0\n",
            "Lib/os.py": "def system(command):\n    return 0\n",
            "Modules/posixmodule.c": C,
        },
    )
    method = Definition("def", "__hash__", ("self",), "Lib/ipaddress.py", "IPv4Interface")
    elsewhere = Definition("def", "__hash__", ("self",), "Lib/sets.py", "BaseSet")
    changed = Definition("def", "system", ("command", "shell"), "Lib/os.py")
    same = Definition("def", "system", ("command",), "Lib/os.py")
    c_fn = Definition("c", "os_system_impl", None, "Modules/posixmodule.c")
    c_gone = Definition("c", "os_audit_impl", None, "Modules/posixmodule.c")
    absent, present = undefined(h.repo, tip, [method, elsewhere, changed, same, c_fn, c_gone])
    assert absent == [method, changed, c_gone]
    assert sorted(present) == ["Lib/os.py:1", "Lib/sets.py:2", "Modules/posixmodule.c:10"]
