from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from stablectl.controller.demo import Example, build_example
from tests.forges import GitHubHarness, Harness, LocalHarness
from tests.ghserver.openapi import Spec, load_spec
from tests.ghserver.server import FakeGitHub


@pytest.fixture(scope="session")
def example_template(tmp_path_factory: pytest.TempPathFactory) -> Example:
    return build_example(tmp_path_factory.mktemp("example"))


@pytest.fixture
def example(tmp_path: Path) -> Example:
    """A fresh copy of the example upstream and fork (tests may change them)."""
    return build_example(tmp_path / "ex")


@pytest.fixture(scope="session")
def github_spec() -> Spec:
    return load_spec()


@pytest.fixture
def fake_github(github_spec: Spec, request: pytest.FixtureRequest) -> Iterator[FakeGitHub]:
    """The GitHub-compatible server on 127.0.0.1. Any answer off GitHub's published schema,
    or any request the description rejects, fails the test that caused it."""
    fake = FakeGitHub(github_spec)
    fake.start()
    yield fake
    fake.stop()
    if request.node.get_closest_marker("off_schema") is None:
        assert not fake.schema_errors, "answers off GitHub's schema:\n" + "\n".join(
            fake.schema_errors
        )
        assert not fake.request_errors, "requests GitHub would reject:\n" + "\n".join(
            fake.request_errors
        )


@pytest.fixture(params=["local", "github"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    h: Harness
    if request.param == "local":
        h = LocalHarness(tmp_path)
    else:
        h = GitHubHarness(tmp_path, request.getfixturevalue("fake_github"))
    yield h
    h.close()


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`stablectl demo` run once: a mirror with backports, a conflict and two releases."""
    from stablectl.cli.main import main

    root = tmp_path_factory.mktemp("demo") / "demo"
    try:
        main(["demo", "--dir", str(root), "--json"])
    except SystemExit as e:
        assert not e.code
    return root


@pytest.fixture
def demo(demo_template: Path, tmp_path: Path) -> Path:
    root = tmp_path / "demo"
    shutil.copytree(demo_template, root, symlinks=True)
    # The copied policy names the template's paths; point it at this copy.
    p = root / "policy.yaml"
    p.write_text(p.read_text().replace(str(demo_template), str(root)))
    return root


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `slow` run on demand (`STABLECTL_SLOW=1`, or `-m slow`); CI runs the
    representative rest."""
    import os

    if os.environ.get("STABLECTL_SLOW") or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with STABLECTL_SLOW=1 or -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
