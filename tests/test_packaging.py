"""The set-up files agree with each other: environment.yml (conda/Binder) follows pyproject.toml,
and dev.py stays runnable on a bare Python (standard library only)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]
# The extras that a conda/Binder user needs: the course to read it, the tests to check it.
EXTRAS_IN_CONDA = ("course", "test")


# ------------------------------------------------------------ a tiny YAML reader
# environment.yml uses only block mappings, block lists, plain or quoted scalars and comments.
# PyYAML is not a dependency of the project, so read that subset here and refuse anything else.


def _strip_comment(line: str) -> str:
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def _scalar(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text[:1] in "[{&*!|>":
        raise ValueError(f"unsupported YAML in environment.yml: {text!r}")
    return text


def parse_yaml(text: str) -> object:
    lines = []
    for raw in text.splitlines():
        line = _strip_comment(raw).rstrip()
        if line.strip() and line.strip() != "---":
            if "\t" in line[: len(line) - len(line.lstrip())]:
                raise ValueError(f"tab in indentation: {raw!r}")
            lines.append((len(line) - len(line.lstrip(" ")), line.strip()))
    value, end = _block(lines, 0, lines[0][0] if lines else 0)
    if end != len(lines):
        raise ValueError(f"cannot parse environment.yml near: {lines[end][1]!r}")
    return value


def _block(lines: list[tuple[int, str]], i: int, indent: int) -> tuple[object, int]:
    if i >= len(lines):
        return None, i
    if lines[i][1].startswith("- ") or lines[i][1] == "-":
        items: list[object] = []
        while i < len(lines) and lines[i][0] == indent and lines[i][1][:1] == "-":
            rest = lines[i][1][1:].strip()
            if not rest:
                value, i = _block(lines, i + 1, lines[i + 1][0])
            elif re.match(r"^[^'\"][^:]*:(\s|$)", rest):
                # "- key: ..." : a mapping inside the list, its keys at the item's indent + 2
                sub = [(indent + 2, rest)]
                j = i + 1
                while j < len(lines) and lines[j][0] > indent:
                    sub.append(lines[j])
                    j += 1
                value, used = _block(sub, 0, indent + 2)
                if used != len(sub):
                    raise ValueError(f"cannot parse list item: {rest!r}")
                i = j
            else:
                value, i = _scalar(rest), i + 1
            items.append(value)
        return items, i
    mapping: dict[str, object] = {}
    while i < len(lines) and lines[i][0] == indent:
        key, sep, rest = lines[i][1].partition(":")
        if not sep:
            raise ValueError(f"expected 'key: value': {lines[i][1]!r}")
        if rest.strip():
            mapping[_scalar(key)] = _scalar(rest)
            i += 1
        elif i + 1 < len(lines) and lines[i + 1][0] >= indent and lines[i + 1][1][:1] == "-":
            # YAML allows a list at the same indent as its key, or deeper.
            mapping[_scalar(key)], i = _block(lines, i + 1, lines[i + 1][0])
        elif i + 1 < len(lines) and lines[i + 1][0] > indent:
            mapping[_scalar(key)], i = _block(lines, i + 1, lines[i + 1][0])
        else:
            mapping[_scalar(key)], i = None, i + 1
    return mapping, i


def test_the_tiny_yaml_reader() -> None:
    text = """
    # comment
    name: x  # trailing comment
    channels:
    - conda-forge
    dependencies:
      - "python=3.11"
      - pip
      - pip:
          - -e .[a,b]
          - 'requests>=2'
    """
    assert parse_yaml(text) == {
        "name": "x",
        "channels": ["conda-forge"],
        "dependencies": ["python=3.11", "pip", {"pip": ["-e .[a,b]", "requests>=2"]}],
    }
    with pytest.raises(ValueError):
        parse_yaml("dependencies: [python, pip]")


# ------------------------------------------------------------ helpers


def env_yml() -> dict:
    env = parse_yaml((ROOT / "environment.yml").read_text(encoding="utf-8"))
    assert isinstance(env, dict), "environment.yml must be a mapping"
    return env


def normalize(name: str) -> str:
    """PEP 503 name normalisation: `Foo_Bar.baz` and `foo-bar-baz` are the same package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, f"cannot read a package name in {requirement!r}"
    return normalize(match.group(1))


def conda_packages(env: dict) -> dict[str, str]:
    """Conda dependencies (not the pip ones): normalised name -> the whole spec."""
    found = {}
    for dep in env.get("dependencies") or []:
        if isinstance(dep, str):
            name = re.split(r"[\s=<>!~]", dep.strip(), maxsplit=1)[0]
            found[normalize(name.split("::")[-1])] = dep.strip()
    return found


def pip_lines(env: dict) -> list[str]:
    lines = []
    for dep in env.get("dependencies") or []:
        if isinstance(dep, dict) and "pip" in dep:
            lines += [str(line) for line in dep["pip"] or []]
    return lines


LOCAL = re.compile(r"^(?:-e\s+|--editable[=\s]+)?(\.(?:/)?)\s*(?:\[([^\]]*)\])?$")


def local_installs(env: dict) -> list[tuple[bool, set[str]]]:
    """The pip lines that install this repository: (editable?, extras)."""
    found = []
    for line in pip_lines(env):
        match = LOCAL.match(line.strip())
        if match:
            extras = {normalize(e.strip()) for e in (match.group(2) or "").split(",") if e.strip()}
            found.append((line.strip().startswith(("-e", "--editable")), extras))
    return found


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def satisfies(version: tuple[int, ...], spec: str) -> bool:
    """Enough of PEP 440 specifiers for requires-python (X.Y[.Z] with ==, !=, <, <=, >, >=)."""
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        match = re.fullmatch(r"(==|!=|<=|>=|<|>|~=)\s*(\d+(?:\.\d+)*)(\.\*)?", clause)
        assert match, f"requires-python clause not understood by this test: {clause!r}"
        op, bound = match.group(1), version_tuple(match.group(2))
        mine = version[: len(bound)]
        ok = {
            "==": mine == bound,
            "!=": mine != bound,
            "<": version < bound,
            "<=": mine <= bound,
            ">": mine > bound,
            ">=": version >= bound,
            "~=": version >= bound and version[: len(bound) - 1] == bound[:-1],
        }[op]
        if not ok:
            return False
    return True


def minimum_python() -> tuple[int, ...]:
    match = re.search(r">=\s*(\d+(?:\.\d+)*)", PROJECT["requires-python"])
    assert match, "requires-python should state a minimum version (>=X.Y)"
    return version_tuple(match.group(1))


# ------------------------------------------------------------ the checks


def test_environment_uses_conda_forge() -> None:
    channels = env_yml().get("channels") or []
    assert channels and channels[0] == "conda-forge", channels
    assert "defaults" not in channels


def test_environment_python_is_the_minimum_supported_python() -> None:
    spec = conda_packages(env_yml()).get("python")
    assert spec, "environment.yml must pin python"
    match = re.fullmatch(r"python\s*=+\s*(\d+\.\d+)(?:\.\*)?", spec)
    assert match, f"pin python as python=X.Y, not {spec!r}"
    version = version_tuple(match.group(1))
    assert satisfies(version, PROJECT["requires-python"]), (
        f"environment.yml has python={match.group(1)}, pyproject.toml requires-python is "
        f"{PROJECT['requires-python']!r}"
    )
    assert version == minimum_python()[:2], (
        "environment.yml should use the oldest Python that pyproject.toml supports, "
        "so the course is checked where it is most likely to break"
    )


def test_ruff_targets_the_minimum_python() -> None:
    target = PYPROJECT["tool"]["ruff"]["target-version"]
    assert target == "py" + "".join(map(str, minimum_python()[:2])), target


def test_environment_installs_this_package_with_pip() -> None:
    env = env_yml()
    assert "pip" in conda_packages(env), "environment.yml has a pip: section, so list pip"
    installs = local_installs(env)
    assert len(installs) == 1, f"expected one pip line installing the repository: {installs}"
    editable, extras = installs[0]
    assert editable, "install the repository editable (-e .[...]) so notebooks see edits"
    declared = {normalize(name) for name in PROJECT.get("optional-dependencies", {})}
    assert extras <= declared, f"extras unknown to pyproject.toml: {sorted(extras - declared)}"


@pytest.mark.parametrize(
    "group", ["dependencies", *(f"optional-dependencies.{e}" for e in EXTRAS_IN_CONDA)]
)
def test_every_dependency_reaches_the_conda_environment(group: str) -> None:
    env = env_yml()
    if group == "dependencies":
        requirements, extra = PROJECT["dependencies"], None
    else:
        extra = group.split(".", 1)[1]
        requirements = PROJECT["optional-dependencies"][extra]
    installs = local_installs(env)
    through_pip = bool(installs) and (extra is None or normalize(extra) in installs[0][1])
    conda = conda_packages(env)
    missing = [
        req for req in requirements if not through_pip and requirement_name(req) not in conda
    ]
    assert not missing, (
        f"{group} of pyproject.toml not in environment.yml (neither a conda package nor "
        f"through the pip line): {missing}"
    )


def test_dev_script_needs_only_the_standard_library() -> None:
    tree = ast.parse((ROOT / "dev.py").read_text(encoding="utf-8"))
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module.split(".")[0])
    outside = sorted(m for m in modules if m not in sys.stdlib_module_names | {"__future__"})
    assert not outside, f"dev.py must run on a bare Python; it imports {outside}"


def test_every_public_submodule_is_reachable_from_wssim() -> None:
    import importlib
    import pkgutil

    import wssim

    names = {m.name for m in pkgutil.iter_modules(wssim.__path__) if not m.name.startswith("_")}
    internal = {"clock", "hosts", "network", "params", "recorder", "simulation", "trace", "world"}
    internal |= {"wiretap"}
    for name in sorted(names - internal):
        assert getattr(wssim, name) is importlib.import_module(f"wssim.{name}"), name


def test_the_course_turns_jupyterlab_s_news_prompt_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("dev", ROOT / "dev.py")
    assert spec is not None and spec.loader is not None
    dev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev)
    monkeypatch.setattr(dev, "VENV", tmp_path)
    path = dev.quiet_jupyterlab()
    assert path == tmp_path / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    plugin = "@jupyterlab/apputils-extension:notification"
    # fetchNews is a string in JupyterLab 4's schema: "true", "false" or "none" (ask).
    assert json.loads(path.read_text())[plugin] == {"fetchNews": "false", "checkForUpdates": False}
    # Settings already there are kept.
    path.write_text(json.dumps({"other": {"a": 1}, plugin: {"doNotDisturbMode": True}}))
    kept = json.loads(dev.quiet_jupyterlab().read_text())
    assert kept["other"] == {"a": 1} and kept[plugin]["doNotDisturbMode"] is True
    assert kept[plugin]["fetchNews"] == "false"
