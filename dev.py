#!/usr/bin/env python3
"""Set up the project and run it: one command per job, standard library only.

    python3 dev.py course   # create/refresh .venv, install the course, open JupyterLab
    python3 dev.py test     # create/refresh .venv, install the tests, lint, then pytest + nbval
    python3 dev.py lint     # ruff check, ruff format --check (add --fix to fix), then mypy
    python3 dev.py execute  # re-execute the notebooks and store their outputs
    python3 dev.py bench    # run bench/run.py
    python3 dev.py reality  # run reality/run.py: the simulation against real Linux TCP (root)
    python3 dev.py clean    # remove .venv and every generated cache

Everything goes into the virtual environment `.venv` next to this file; nothing is installed
or registered outside it. The environment is created when missing and reused otherwise; the
package is (re)installed with `pip install -e ".[extras]"` whenever pyproject.toml changed
since the last install (a stamp holding its hash lives inside .venv).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

MIN_PYTHON = (3, 11)
ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYPROJECT = ROOT / "pyproject.toml"
NOTEBOOKS = ROOT / "notebooks"
BENCH = ROOT / "bench" / "run.py"
REALITY = ROOT / "reality" / "run.py"
STAMP = VENV / ".wssim-dev-stamp.json"
WINDOWS = os.name == "nt"
VENV_BIN = VENV / ("Scripts" if WINDOWS else "bin")
VENV_PYTHON = VENV_BIN / ("python.exe" if WINDOWS else "python")

# What `clean` removes, besides .venv: generated directories found anywhere in the tree.
CLEAN_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".ipynb_checkpoints"}
CLEAN_TOP = ["build", "dist"]


class Failure(Exception):
    """A step failed: message for the user, exit code for the shell."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------- output


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def show_command(cmd: list[str]) -> None:
    shown = [_short(part) for part in cmd]
    print("$ " + " ".join(shown), flush=True)


def _short(part: str) -> str:
    """Show paths inside the repository relative to it, so commands stay readable."""
    try:
        rel = Path(part).relative_to(ROOT)
    except ValueError:
        return part
    return str(rel) if str(rel) != "." else "."


# ---------------------------------------------------------------- environment


def child_env(**extra: str) -> dict[str, str]:
    """The environment of every child process: as if .venv were activated."""
    env = dict(os.environ)
    env.pop("PYTHONHOME", None)
    env["VIRTUAL_ENV"] = str(VENV)
    env["PATH"] = str(VENV_BIN) + os.pathsep + env.get("PATH", "")
    # Inside the venv, Jupyter looks at the venv's kernels and settings before the user's
    # (the default in a venv, made explicit): a kernel registered elsewhere never wins.
    env["JUPYTER_PREFER_ENV_PATH"] = "1"
    env.update(extra)
    return env


def run(cmd: list[str], *, env: dict[str, str] | None = None, what: str = "") -> int:
    show_command(cmd)
    try:
        return subprocess.call(cmd, cwd=ROOT, env=env or child_env())
    except FileNotFoundError as exc:
        raise Failure(f"cannot run {cmd[0]}: {exc}") from exc
    except KeyboardInterrupt:
        raise Failure(f"{what or cmd[0]} interrupted", 130) from None


def check(cmd: list[str], what: str, *, env: dict[str, str] | None = None) -> None:
    code = run(cmd, env=env, what=what)
    if code != 0:
        raise Failure(f"{what} failed (exit code {code})", code)


def pyproject_hash() -> str:
    if not PYPROJECT.is_file():
        raise Failure(f"{PYPROJECT} not found: is dev.py at the root of the repository?")
    return hashlib.sha256(PYPROJECT.read_bytes()).hexdigest()


def read_stamp() -> dict:
    try:
        stamp = json.loads(STAMP.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return stamp if isinstance(stamp, dict) else {}


def venv_python_version() -> tuple[int, ...] | None:
    """The venv's Python version, or None if the venv is missing or broken."""
    if not VENV_PYTHON.exists():
        return None
    try:
        out = subprocess.run(
            [str(VENV_PYTHON), "-c", "import sys; print(*sys.version_info[:3])"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        return tuple(int(x) for x in out.split())
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def create_venv() -> None:
    version = sys.version.split()[0]
    say(f"Creating the virtual environment {_short(str(VENV))} with Python {version}")
    cmd = [sys.executable, "-m", "venv", str(VENV)]
    show_command(cmd)
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        hint = ""
        if "ensurepip" in result.stdout + result.stderr:
            hint = (
                "\n    This Python has no ensurepip. On Debian/Ubuntu install it with"
                f"\n    apt-get install python3.{sys.version_info[1]}-venv   (or python3-venv)"
            )
        shutil.rmtree(VENV, ignore_errors=True)
        raise Failure("could not create the virtual environment" + hint)
    check(
        [str(VENV_PYTHON), "-m", "pip", "install", "--upgrade", "pip"],
        "upgrading pip inside .venv",
    )


def ensure_venv(extras: set[str], *, reinstall: bool = False) -> None:
    """Create .venv if needed and install the package with `extras` if out of date."""
    version = venv_python_version()
    stamp = read_stamp()
    if version is None:
        if VENV.exists():
            say(".venv exists but its Python does not run: making a new one")
    elif stamp.get("root") not in (None, str(ROOT)):
        say(f".venv was made for {stamp['root']}, not for {ROOT}: making a new one")
        version = None
    elif version[:2] < MIN_PYTHON:
        say(f".venv has Python {'.'.join(map(str, version))}, too old: making a new one")
        version = None
    if version is None:
        shutil.rmtree(VENV, ignore_errors=True)
        create_venv()
        stamp = {}

    digest = pyproject_hash()
    installed = set(stamp.get("extras", []))
    up_to_date = stamp.get("pyproject_sha256") == digest and extras <= installed
    if up_to_date and not reinstall:
        say(f"Environment up to date (.venv, extras: {', '.join(sorted(installed)) or 'none'})")
        return

    # Install everything this venv has had, so the whole venv follows the new pyproject.toml.
    wanted = sorted(extras | installed)
    if stamp.get("pyproject_sha256") not in (None, digest):
        say("pyproject.toml changed since the last install: re-installing")
    target = str(ROOT) + (f"[{','.join(wanted)}]" if wanted else "")
    say(f"Installing wssim in editable mode with {', '.join(wanted) or 'no'} extras")
    STAMP.unlink(missing_ok=True)  # an interrupted install must not look complete
    check(
        [str(VENV_PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-e", target],
        "pip install",
    )
    STAMP.write_text(
        json.dumps(
            {
                "pyproject_sha256": digest,
                "extras": wanted,
                "root": str(ROOT),
                "installed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )


# ---------------------------------------------------------------- commands


def cmd_lint(args: argparse.Namespace) -> int:
    ensure_venv({"test"}, reinstall=args.reinstall)
    lint(fix=args.fix)
    say("Lint passed")
    return 0


def lint(*, fix: bool = False) -> None:
    ruff = [str(VENV_PYTHON), "-m", "ruff"]
    if fix:
        check([*ruff, "check", "--fix", "."], "ruff check --fix")
        check([*ruff, "format", "."], "ruff format")
    else:
        check([*ruff, "check", "."], "ruff check")
        check([*ruff, "format", "--check", "."], "ruff format --check")
    # Type-check the package; what and how strictly is in [tool.mypy] of pyproject.toml.
    check([str(VENV_PYTHON), "-m", "mypy"], "mypy")


def cmd_test(args: argparse.Namespace) -> int:
    ensure_venv({"test"}, reinstall=args.reinstall)
    say("Lint: ruff check, ruff format --check and mypy")
    lint()
    say("Tests: pytest (unit tests, and every notebook through nbval)")
    # No MPLBACKEND here: the notebooks' kernels must draw figures inline, as when the
    # outputs were stored, or nbval would miss them. Unit tests choose Agg themselves.
    env = child_env(
        PYDEVD_DISABLE_FILE_VALIDATION="1",  # silences debugpy's note in each kernel
    )
    code = run([str(VENV_PYTHON), "-m", "pytest", *args.pytest_args], env=env, what="pytest")
    if code == 0:
        say("All checks passed")
    elif code == 5:
        say("pytest collected no tests (exit code 5): nothing was tested")
    else:
        say(f"pytest failed (exit code {code})")
    return code


def cmd_execute(args: argparse.Namespace) -> int:
    """Re-execute notebooks in place, as nbval will check them, and store their outputs."""
    ensure_venv({"test"}, reinstall=args.reinstall)
    paths = [Path(p).resolve() for p in args.notebooks] or sorted(NOTEBOOKS.glob("*.ipynb"))
    env = child_env(PYDEVD_DISABLE_FILE_VALIDATION="1")
    done = 0
    for path in paths:
        if not path.is_file():
            raise Failure(f"no such notebook: {path}")
        todo = [path]
        if path.parent == NOTEBOOKS.resolve():
            # A notebook with solutions: make its learner copy again, and execute it too.
            learner = [str(VENV_PYTHON), str(ROOT / "tools" / "learner.py"), "--all", str(path)]
            check(learner, "learner copy")
            todo.append(path.parent / "learner" / path.name)
        for notebook in todo:
            say(f"Executing {_short(str(notebook))}")
            check([str(VENV_PYTHON), "-c", EXECUTE_NOTEBOOK, str(notebook)], notebook.name, env=env)
            strip_volatile_metadata(notebook)
            done += 1
    say(f"Executed {done} notebook(s): review the diff, then commit them")
    return 0


# Run in the venv: execute a notebook with its own directory as working directory, as
# nbval does, and write it back with its outputs.
EXECUTE_NOTEBOOK = """
import sys, pathlib, nbformat, nbclient
path = pathlib.Path(sys.argv[1])
notebook = nbformat.read(path, as_version=4)
where = {"metadata": {"path": str(path.parent)}}
nbclient.NotebookClient(notebook, timeout=600, resources=where).execute()
nbformat.write(notebook, path)
"""


def strip_volatile_metadata(path: Path) -> None:
    """Drop per-cell execution timestamps, and merge consecutive stream outputs, so that
    re-running a notebook only changes what it printed.

    How a kernel splits printed text into stream messages depends on when it flushes (a
    matter of wall time); nbval compares the merged text, and so does the stored copy.
    """
    notebook = json.loads(path.read_text(encoding="utf-8"))
    for cell in notebook.get("cells", []):
        cell.get("metadata", {}).pop("execution", None)
        merged: list[dict[str, object]] = []
        for output in cell.get("outputs", []):
            last = merged[-1] if merged else None
            if (
                last is not None
                and output.get("output_type") == "stream"
                and last.get("output_type") == "stream"
                and last.get("name") == output.get("name")
            ):
                text = "".join(last["text"]) + "".join(output["text"])  # type: ignore[arg-type]
                last["text"] = text.splitlines(keepends=True)
            else:
                merged.append(output)
        if "outputs" in cell:
            cell["outputs"] = merged
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def cmd_bench(args: argparse.Namespace) -> int:
    if not BENCH.is_file():
        raise Failure(f"no benchmarks yet: {_short(str(BENCH))} does not exist")
    ensure_venv(set(), reinstall=args.reinstall)
    env = child_env(MPLBACKEND="Agg")
    code = run([str(VENV_PYTHON), str(BENCH), *args.bench_args], env=env, what="bench")
    if code != 0:
        raise Failure(f"benchmarks failed (exit code {code})", code)
    return 0


def reality_missing() -> str | None:
    """What the real side of the reality suite lacks here, as one sentence, or None.

    As root with apt-get, a missing nft or ip is installed (nftables, iproute2) first.
    """
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return (
            "it needs root, for network namespaces and nftables: run `sudo python3 dev.py "
            "reality` on Linux"
        )
    wanted = {"ip": "iproute2", "nft": "nftables"}
    absent = [pkg for tool, pkg in wanted.items() if shutil.which(tool) is None]
    if absent and shutil.which("apt-get"):
        say(f"Installing {', '.join(absent)} with apt-get")
        subprocess.call(["apt-get", "install", "-y", *absent], cwd=ROOT)
        absent = [pkg for tool, pkg in wanted.items() if shutil.which(tool) is None]
    if absent:
        return (
            f"it needs {' and '.join(absent)} (the `ip netns` and `nft` commands): install "
            f"them, for example `apt-get install -y {' '.join(absent)}`"
        )
    # The browser group (reality/chromium.py) needs headless Chromium; without it that group
    # alone is skipped, and run.py says so.
    if shutil.which("chromium") is None and shutil.which("apt-get"):
        say("Installing chromium with apt-get (the browser group)")
        subprocess.call(["apt-get", "install", "-y", "chromium"], cwd=ROOT)
    return None


def cmd_reality(args: argparse.Namespace) -> int:
    if not REALITY.is_file():
        raise Failure(f"no reality suite: {_short(str(REALITY))} does not exist")
    missing = reality_missing()
    if missing is not None:
        say(f"Skipped the reality suite: {missing}.")
        return 0
    ensure_venv(set(), reinstall=args.reinstall)
    extra: list[str] = []
    if args.runs is not None:
        extra += ["--runs", str(args.runs)]
    for name in args.only:
        extra += ["--only", name]
    if args.scale is not None:
        extra += ["--scale", str(args.scale)]
    cmd = [str(VENV_PYTHON), str(REALITY), *extra, *args.reality_args]
    code = run(cmd, what="reality")
    if code != 0:
        raise Failure(f"the reality suite found disagreements (exit code {code})", code)
    return 0


def free_port(start: int, tries: int = 50) -> int:
    """The first port from `start` on which nothing listens on localhost (v4 and v6)."""
    for port in range(start, start + tries):
        if all(_can_bind(family, port) for family in _localhost_families()):
            return port
    raise Failure(f"no free port in {start}..{start + tries - 1}; pass --port")


def _localhost_families() -> list[tuple[int, str]]:
    families = [(socket.AF_INET, "127.0.0.1")]
    if socket.has_ipv6 and _can_bind((socket.AF_INET6, "::1"), 0):
        families.append((socket.AF_INET6, "::1"))
    return families


def _can_bind(family_addr: tuple[int, str], port: int) -> bool:
    family, addr = family_addr
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((addr, port))
    except OSError:
        return False
    return True


def server_answers(port: int) -> bool:
    """True when a Jupyter server answers GET /api on localhost:port (no proxy)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}/api", timeout=2) as response:
            return response.status == 200 and b"version" in response.read()
    except (OSError, urllib.error.URLError, ValueError):
        return False


# JupyterLab's settings that the course overrides, for every user of this .venv: no "news"
# prompt and no check for updates on a learner's first start. overrides.json in
# <sys.prefix>/share/jupyter/lab/settings/ replaces the defaults of the settings' schemas
# (JupyterLab docs, "Advanced usage: overrides.json"); "fetchNews": "false" is "Never".
LAB_OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
}


def quiet_jupyterlab() -> Path:
    """Write the course's overrides into the venv's JupyterLab settings; keep any others."""
    path = VENV / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        current = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        current = {}
    if not isinstance(current, dict):
        current = {}
    for plugin, settings in LAB_OVERRIDES.items():
        current.setdefault(plugin, {}).update(settings)
    path.write_text(json.dumps(current, indent=2) + "\n", encoding="utf-8")
    return path


def cmd_course(args: argparse.Namespace) -> int:
    ensure_venv({"course"}, reinstall=args.reinstall)
    NOTEBOOKS.mkdir(exist_ok=True)
    quiet_jupyterlab()
    port = args.port if args.port else free_port(int(os.environ.get("JUPYTER_PORT", "8888")))
    token = os.environ.get("JUPYTER_TOKEN") or _token()
    cmd = [
        str(VENV_PYTHON),
        "-m",
        "jupyterlab",
        f"--ServerApp.root_dir={NOTEBOOKS}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
    ]
    if args.no_browser:
        cmd.append("--ServerApp.open_browser=False")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    cmd += args.jupyter_args
    # The token goes through the environment, not the command line, so `ps` does not show it.
    env = child_env(JUPYTER_TOKEN=token)
    url = f"http://localhost:{port}/lab?token={token}"
    say(f"Starting JupyterLab on {_short(str(NOTEBOOKS))}/ (stop it with Ctrl-C)")
    show_command(cmd)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)

    def forward(signum: int, _frame: object) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), forward)

    deadline = time.monotonic() + 300
    announced = False
    while True:
        try:
            if not announced and proc.poll() is None:
                if server_answers(port):
                    announced = True
                    print(f"\n==> JupyterLab is ready: {url}\n", flush=True)
                elif time.monotonic() > deadline:
                    announced = True
                    say(f"JupyterLab is slow to answer; try {url}")
                else:
                    time.sleep(0.5)
                    continue
            code = proc.wait()
            break
        except KeyboardInterrupt:
            # Ctrl-C reached JupyterLab too; it decides (it may ask to confirm). Keep waiting.
            announced = True
    if code not in (0, -signal.SIGTERM, 128 + signal.SIGTERM):
        raise Failure(f"JupyterLab exited with code {code}", code if code > 0 else 1)
    say("JupyterLab stopped")
    return 0


def _token() -> str:
    import secrets

    return secrets.token_hex(24)


def cmd_clean(args: argparse.Namespace) -> int:
    removed = []
    for name in CLEAN_TOP:
        path = ROOT / name
        if path.is_dir():
            removed.append(path)
    removed += sorted(ROOT.glob("*.egg-info"))
    for dirpath, dirnames, _ in os.walk(ROOT):
        here = Path(dirpath)
        if here == ROOT:
            dirnames[:] = [d for d in dirnames if d not in (".git", ".venv")]
        for d in list(dirnames):
            if d in CLEAN_DIRS:
                removed.append(here / d)
                dirnames.remove(d)
    if not args.keep_venv and VENV.exists():
        removed.append(VENV)
    for path in removed:
        print(f"removing {_short(str(path))}")
        if path.is_symlink() or path.is_file():
            path.unlink()
        else:
            shutil.rmtree(path)
    say("Clean" if removed else "Nothing to clean")
    return 0


# ---------------------------------------------------------------- command line


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python3 dev.py",
        description=(
            "Set up the wssim course and run it. Each command creates .venv next to this "
            "script if missing, (re)installs the package when pyproject.toml changed, then "
            "does its job. Nothing is installed outside .venv."
        ),
        epilog=(
            "examples:\n"
            "  python3 dev.py course                  set up and open the course\n"
            "  python3 dev.py test                    set up, lint, run every test\n"
            "  python3 dev.py test -- -k clock -x     options after -- go to pytest\n"
            "  python3 dev.py course -- --debug       options after -- go to JupyterLab\n"
            "  python3 dev.py COMMAND --help          the options of one command"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.add_argument(
            "--reinstall",
            action="store_true",
            help="run pip install again even if pyproject.toml did not change",
        )
        return sp

    sp = add("course", 'install ".[course]" and open JupyterLab on notebooks/')
    sp.add_argument("--port", type=int, default=0, help="port (default: first free from 8888)")
    sp.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    sp.add_argument(
        "jupyter_args", nargs=argparse.REMAINDER, help="after --: more options for JupyterLab"
    )
    sp.set_defaults(func=cmd_course)

    sp = add(
        "test",
        'install ".[test]", then ruff check, ruff format --check, mypy, and pytest '
        "(unit tests and every notebook through nbval; warnings are errors)",
    )
    sp.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: options for pytest")
    sp.set_defaults(func=cmd_test)

    sp = add("lint", "ruff check, ruff format --check, then mypy on the package")
    sp.add_argument("--fix", action="store_true", help="fix what ruff can and reformat")
    sp.set_defaults(func=cmd_lint)

    sp = add(
        "execute",
        "re-execute notebooks in place and store their outputs (all by default); a notebook "
        "with solutions gets its learner copy (notebooks/learner/) made again and executed",
    )
    sp.add_argument("notebooks", nargs="*", help="notebook files (default: notebooks/*.ipynb)")
    sp.set_defaults(func=cmd_execute)

    sp = add("bench", "run the benchmarks (bench/run.py)")
    sp.add_argument("bench_args", nargs=argparse.REMAINDER, help="after --: options for run.py")
    sp.set_defaults(func=cmd_bench)

    sp = add(
        "reality",
        "run the reality suite (reality/run.py): each scenario in the simulation and on real "
        "Linux TCP between network namespaces, compared; needs root",
    )
    sp.add_argument("--runs", type=int, default=None, help="real runs per scenario (3)")
    sp.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="run only this scenario"
    )
    sp.add_argument("--scale", type=float, default=None, help="real time per second (0.05)")
    sp.add_argument("reality_args", nargs=argparse.REMAINDER, help="after --: options for run.py")
    sp.set_defaults(func=cmd_reality)

    sp = sub.add_parser(
        "clean", help="remove .venv and generated caches", description="remove generated files"
    )
    sp.add_argument("--keep-venv", action="store_true", help="keep .venv, remove only caches")
    sp.set_defaults(func=cmd_clean)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if not args.command:
        p.print_help()
        return 2
    for name in ("jupyter_args", "pytest_args", "bench_args", "reality_args"):
        rest = getattr(args, name, None)
        if rest and rest[0] == "--":
            setattr(args, name, rest[1:])
    if sys.version_info < MIN_PYTHON and args.command != "clean":
        need = ".".join(map(str, MIN_PYTHON))
        print(
            f"error: Python {need} or newer is needed, this is {sys.version.split()[0]}. "
            f"Run it as: python{need} dev.py {args.command}",
            file=sys.stderr,
        )
        return 1
    try:
        return args.func(args)
    except Failure as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
