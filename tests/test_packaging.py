"""stablectl as a package, not a source tree (issue 18): the wheel carries every file the
package reads at run time (`templates/*` once left `templates/workflows/` out), installs into a
fresh venv and runs there; the sdist carries what a distribution needs (tests, docs, license).
Everything is built offline from a copy of the tree (`python -m build --no-isolation`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

from stablectl import __version__

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel, built from a copy of the tree (the checkout stays clean and
    parallel test workers do not share a build directory)."""
    tmp = tmp_path_factory.mktemp("dist")
    files = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    src = tmp / "src"
    for f in filter(None, files):
        path = ROOT / f.decode()
        if path.is_file():
            (src / f.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, src / f.decode())
    out = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp / "dist"), str(src)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return tmp / "dist"


def test_the_wheel_has_every_package_file(dist: Path) -> None:
    (wheel,) = dist.glob("stablectl-*.whl")
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("stablectl/")}
    tree = {
        str(p.relative_to(ROOT))
        for p in (ROOT / "stablectl").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert tree - shipped == set()
    assert "stablectl/templates/workflows/stable-tests.yml.j2" in shipped


def test_the_sdist_has_what_a_distribution_builds_and_tests_with(dist: Path) -> None:
    (sdist,) = dist.glob("stablectl-*.tar.gz")
    with tarfile.open(sdist) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    assert {"LICENSE", "README.md", "pyproject.toml", "tests/conftest.py"} <= names
    assert {"docs/verify.md", "docs/policy.md", "policies/cpython.yaml", ".ci/run"} <= names
    assert not any("__pycache__" in n for n in names)
    check = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.iterdir())],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_installed_wheel_runs_in_a_fresh_venv(dist: Path, tmp_path: Path) -> None:
    """Not the source tree: a new venv gets the wheel (no deps, no index); the dependencies
    come from this venv's site-packages by a plain path (its editable finder is not run), so
    `stablectl` can only be the wheel's."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_path('purelib'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "deps-from-the-test-venv.pth").write_text(sysconfig.get_path("purelib") + "\n")
    (wheel,) = dist.glob("stablectl-*.whl")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index"]
    subprocess.run([*pip, str(wheel)], check=True, capture_output=True)

    def run(*args: str, cwd: Path = tmp_path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(venv / "bin" / "stablectl"), *args],
            capture_output=True,
            text=True,
            cwd=cwd,
            env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "NO_COLOR": "1"},
            timeout=600,
        )

    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import stablectl; print(stablectl.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout.strip()
    assert where.startswith(site), where
    assert run("--version").stdout.strip().endswith(__version__)
    demo = run("demo", "--dir", str(tmp_path / "demo"), "--json")
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert {r["tag"] for r in json.loads(demo.stdout)["releases"]} == {"v3.11.2.1", "v3.12.1.1"}
    out = tmp_path / "wf"
    wf = run("workflows", "--policy", str(ROOT / "policies" / "cpython.yaml"), "--write", str(out))
    assert wf.returncode == 0, wf.stderr
    written = {p.name for p in (out / ".github" / "workflows").iterdir()}
    assert written == {"stable-tests.yml", "stablectl.yml"}
    state = ["--state-dir", str(tmp_path / "demo" / "state")]
    init = run(*state, "init", "--policy", str(tmp_path / "demo" / "policy.yaml"), "--json")
    assert init.returncode == 0, init.stderr[-3000:]
    schema = run("policy", "schema")
    assert schema.returncode == 0 and json.loads(schema.stdout)["title"] == "stablectl policy"
