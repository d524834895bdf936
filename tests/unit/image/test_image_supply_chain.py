"""The operator image installs only what is pinned: base images by digest, every Python package at the
version and hash a lock file names, and the locks cover what pyproject.toml asks for."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[3]
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}(\s|$)")


def from_lines() -> list[str]:
    return [
        line for line in (REPO / "Dockerfile").read_text().splitlines() if line.upper().startswith("FROM ")
    ]


def locked(path: Path) -> dict[str, tuple[Version, int]]:
    """{package: (pinned version, number of hashes)} of a `uv pip compile --generate-hashes` file."""
    pins: dict[str, tuple[Version, int]] = {}
    current = ""
    for line in path.read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)", line):
            current = canonicalize_name(match[1])
            assert current not in pins, f"{path.name}: {current} pinned twice (platform markers?)"
            pins[current] = (Version(match[2]), 0)
        elif line.strip().startswith("--hash=sha256:") and current:
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
        elif line and not line.startswith((" ", "#")):
            raise AssertionError(f"{path.name}: not an exact pin: {line!r}")
    return pins


def test_every_base_image_is_pinned_by_digest() -> None:
    lines = from_lines()
    assert len(lines) >= 2, lines  # the build stage and the runtime stage
    for line in lines:
        image = line.split()[1]
        if not image.startswith("${") and "--from" not in line:
            assert DIGEST.search(image + " "), f"not pinned by digest: {line}"


def test_pip_installs_only_from_the_locks_with_hashes() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    installs = re.findall(r"pip install[^\n&]*", dockerfile)
    assert installs
    for install in installs:
        from_lock = "--require-hashes" in install and "-r requirements" in install
        own_wheel = "--no-deps" in install and "/wheels/" in install
        assert from_lock or own_wheel, f"an install that is neither locked nor our own wheel: {install}"
    assert "--no-build-isolation" in dockerfile  # the build backend comes from its lock, too


@pytest.mark.parametrize(
    ("lock", "table", "key"),
    [
        ("requirements.lock", "project", "dependencies"),
        ("requirements-build.lock", "build-system", "requires"),
    ],
)
def test_the_lock_covers_pyproject(lock: str, table: str, key: str) -> None:
    wanted_all: list[str] = tomllib.loads((REPO / "pyproject.toml").read_text())[table][key]
    pins = locked(REPO / lock)
    assert pins and all(hashes > 0 for _, hashes in pins.values()), f"{lock}: a pin without hashes"
    for raw in wanted_all:
        wanted = Requirement(raw)
        name = canonicalize_name(wanted.name)
        assert name in pins, f"{lock} does not pin {wanted.name}; run `make lock`"
        version, _ = pins[name]
        assert wanted.specifier.contains(version, prereleases=True), (
            f"{lock} pins {name}=={version}, outside pyproject's {wanted}; run `make lock`"
        )
