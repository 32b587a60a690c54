"""The project's own set-up installs pinned versions, and the pins honour pyproject.toml's ranges.

A clean clone must install next month what CI tested today: `make setup` and the Dockerfile install
through requirements/lock.txt. A dependency added to pyproject.toml without refreshing the lock
(`make lock`), or a lock pin outside a range, fails here rather than on a user's machine.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "lock.txt"


def _locked() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in LOCK.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)", line.strip())
        assert match, f"lock line is not an exact pin: {line!r}"
        pins[canonicalize_name(match[1])] = match[2]
    return pins


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared += extra
    env = {str(k): str(v) for k, v in default_environment().items()}
    env.update(python_version="3.11", python_full_version="3.11.0")
    return [r for r in map(Requirement, declared)
            if canonicalize_name(r.name) != "errstream" and (r.marker is None or r.marker.evaluate(env))]


def test_every_declared_dependency_is_pinned_within_its_range() -> None:
    pins = _locked()
    for requirement in _requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is in pyproject.toml but not in the lock: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"lock pins {requirement.name}=={pins[name]}, outside pyproject's {requirement.specifier}")


def test_the_build_backend_and_pip_are_pinned_within_the_build_requirements() -> None:
    pins = _locked()
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    for requirement in map(Requirement, build):
        assert requirement.specifier.contains(pins[canonicalize_name(requirement.name)])
    assert "pip" in pins


def test_setup_and_the_image_install_through_the_lock() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "LOCK   ?= requirements/lock.txt" in makefile and "PIP_CONSTRAINT=$(abspath $(LOCK))" in makefile
    assert "$(PIN) $(BIN)/pip install" in makefile
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY requirements/lock.txt" in dockerfile and "PIP_CONSTRAINT=/app/requirements/lock.txt pip" in dockerfile
