"""The package as a user installs it: a wheel and an sdist, installed without the source tree.

The editable installs of dev.py and environment.yml would hide a subpackage missing from
the wheel (as wssim.course.exercises once was); this builds both distributions, installs the wheel
into a fresh virtual environment, imports every module from there and runs one exercise
check. The fresh environment borrows this one's third-party packages (a path file), so the
test needs no network; wssim itself comes only from the wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODULES = sorted(
    ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for path in (ROOT / "wssim").rglob("*.py")
    if path.name != "__main__.py"
)

IMPORT_EVERYTHING = """
import importlib, pathlib, sys
import wssim
where = pathlib.Path(wssim.__file__).resolve()
assert sys.prefix in str(where), (where, sys.prefix)  # the wheel's copy, not the source tree
for name in sys.argv[1:]:
    importlib.import_module(name)
assert (where.parent / "py.typed").is_file()
from websockets.asyncio.client import connect
from wssim.course.exercises import lesson00

async def client():
    async with connect("ws://server:8765") as ws:
        for _ in range(3):
            await ws.send("hi")
            await ws.recv()

feedback = lesson00.sequential(client, 0.5)
assert feedback.passed, feedback
print("imported", len(sys.argv) - 1, "modules from", where.parent.parent.name)
"""


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONWARNINGS": "error::UserWarning:setuptools"},
    )
    (wheel,) = out.glob("wssim-*.whl")
    (sdist,) = out.glob("wssim-*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


def test_the_wheel_holds_every_module_and_the_type_marker(dists: dict[str, Path]) -> None:
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        names = set(wheel.namelist())
    for module in MODULES:
        path = module.replace(".", "/")
        assert f"{path}.py" in names or f"{path}/__init__.py" in names, module
    assert "wssim/py.typed" in names
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        text = wheel.read(metadata).decode()
    assert "License-Expression: MIT" in text
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


def test_the_sdist_holds_the_package_and_its_tests(dists: dict[str, Path]) -> None:
    with tarfile.open(dists["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {
        "pyproject.toml",
        "README.md",
        "LICENSE",
        "wssim/__init__.py",
        "wssim/py.typed",
    } <= names
    assert {"wssim/course/exercises/__init__.py", "wssim/course/exercises/lesson00.py"} <= names


def test_the_wheel_installed_alone_imports_everything_and_checks_an_exercise(
    dists: dict[str, Path], tmp_path: Path
) -> None:
    env = tmp_path / "venv"
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # Third-party packages from this environment, without this environment's path files
    # (one of which points at the source tree for the editable install).
    (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
            str(dists["wheel"]),
        ],
        check=True,
        capture_output=True,
    )
    done = subprocess.run(
        [python, "-W", "error", "-c", IMPORT_EVERYTHING, *MODULES],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,  # not the repository: `import wssim` must find the installed copy
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"MPLBACKEND": "Agg"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"imported {len(MODULES)} modules from site-packages")
