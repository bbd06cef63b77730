from __future__ import annotations

from pathlib import Path

import pytest

from stablectl.testing.history import Example, build_example


@pytest.fixture(scope="session")
def example_template(tmp_path_factory: pytest.TempPathFactory) -> Example:
    return build_example(tmp_path_factory.mktemp("example"))


@pytest.fixture
def example(tmp_path: Path) -> Example:
    """A fresh copy of the example upstream and fork (tests may change them)."""
    return build_example(tmp_path / "ex")
