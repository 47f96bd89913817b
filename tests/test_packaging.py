"""The installable package: pyproject's dependencies agree with requirements.txt's exact pins."""

from __future__ import annotations

import re

import tomllib
from conftest import REPO
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def _pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier  # exact pins only
            assert spec.operator == "==", f"requirements.txt pins exactly: {line}"
            pins[canonicalize_name(req.name)] = spec.version
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        reqs += [Requirement(r) for r in extra]
    return reqs


def test_every_declared_dependency_admits_the_pinned_version() -> None:
    pins = _pins()
    for req in _declared():
        name = canonicalize_name(req.name)
        assert name in pins, f"pyproject declares {req} but requirements.txt does not pin it"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"pyproject's {req} excludes requirements.txt's {name}=={pins[name]}"
        )
        # no open-ended ranges: a new major (or, before 1.0, minor) release must not slip in
        assert any(s.operator in ("==", "~=") for s in req.specifier), f"{req} is not bounded above"


def test_every_pin_is_declared_somewhere() -> None:
    declared = {canonicalize_name(r.name) for r in _declared()}
    missing = sorted(set(_pins()) - declared)
    assert not missing, f"requirements.txt pins packages that pyproject.toml does not declare: {missing}"


def test_extras_exist() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {"train", "serve", "leaderboard", "dev"} <= set(extras)
    assert re.search(r"bitsandbytes", " ".join(extras["train"]))
