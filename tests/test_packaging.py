"""The package installs as the README's "Install" section says (issue 25, item 3).

The wheel is built as a user builds it (`python -m build --wheel`, offline: `--no-isolation`
with the dev environment's build backend) and installed with pip into a fresh venv, which
finds the runtime dependencies in this environment's site-packages (a path line, not this
environment's own `.pth` files, so the editable checkout stays invisible). From there the
package imports from the wheel, not from the checkout, and `amili-async --help` runs: a file
left out of the wheel, a broken entry point or a dependency missing from the metadata fails.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

from tests.conftest import ROOT

TIMEOUT = 120.0
"""Seconds any one step may take (each takes a few on a loaded 2-core machine)."""

RUNTIME = {"aiohttp", "attrs", "cattrs", "msgspec"}
"""The runtime dependencies the README's Install section names: nothing else is required."""


def _run(*args: str | Path, cwd: Path) -> str:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_wheel_installs_into_a_fresh_venv_and_runs(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    _run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", out, ROOT,
         cwd=tmp_path)  # fmt: skip
    (wheel,) = out.glob("amili_async-*-py3-none-any.whl")

    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
    assert "amili_async/py.typed" in names
    assert "amili_async/models/__init__.py" in names
    assert not [n for n in names if n.endswith(".pyc") or n.startswith("tests/")]
    required = [r for r in metadata.get_all("Requires-Dist") or [] if "extra ==" not in r]
    assert {r.split(">")[0].split("<")[0].split("=")[0].strip() for r in required} == RUNTIME
    assert set(metadata.get_all("Provides-Extra") or []) >= {"dask", "parquet", "pytest"}

    target = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(target)
    python = target / "bin" / "python"
    site = Path(
        _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
             cwd=tmp_path).strip()
    )  # fmt: skip
    (site / "runtime-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
         "--quiet", wheel, cwd=tmp_path)  # fmt: skip

    where = _run(python, "-c", "import amili_async, amili_async.sandbox; "
                 "print(amili_async.__file__, amili_async.__version__)", cwd=tmp_path)  # fmt: skip
    path, version = where.split()
    assert Path(path).is_relative_to(site), path  # the wheel's copy, not the checkout
    assert version == metadata["Version"]
    usage = _run(target / "bin" / "amili-async", "--help", cwd=tmp_path)
    assert usage.startswith("usage: amili-async")
    for command in ("sandbox", "export", "submit", "demo", "webhooks"):
        assert command in usage
