"""The wheel carries every file the package reads at run time (issue 18: `templates/*` left
`templates/workflows/` out, so an installed stablectl could not render its workflows)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_has_every_package_file(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = tmp_path.glob("stablectl-*.whl")
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("stablectl/")}
    tree = {
        str(p.relative_to(ROOT))
        for p in (ROOT / "stablectl").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert tree - shipped == set()
    assert "stablectl/templates/workflows/stable-tests.yml.j2" in shipped
