"""pyproject.toml's version bounds: every dependency, extras included, has a lower bound that
requirements/lowest.txt pins (what `make test-lowest` tests) and an upper bound below a next major version, and
the versions installed where the tests run are inside those bounds."""

from __future__ import annotations

from importlib import metadata

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tests.conftest import ROOT


def declared() -> list[Requirement]:
    """Every requirement in [project] dependencies and optional-dependencies, less the extras' own references
    to physworld[...]."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = [
        *project["dependencies"],
        *(r for extra in project["optional-dependencies"].values() for r in extra),
    ]
    return [r for r in map(Requirement, lines) if r.name != "physworld"]


def lowest_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements" / "lowest.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and name.strip() not in pins, (
                f"requirements/lowest.txt: {line!r} is not one name==version"
            )
            pins[name.strip()] = version.strip()
    return pins


def bounds(req: Requirement) -> tuple[str | None, str | None]:
    """(the `>=` version, the `<` version) of a requirement; None for either that is missing."""
    specs = {s.operator: s.version for s in req.specifier}
    assert set(specs) <= {">=", "<"} and len(req.specifier) == len(specs), f"{req}: only one >= and one <"
    return specs.get(">="), specs.get("<")


def test_every_dependency_has_the_lowest_pin_as_lower_bound_and_a_major_upper_bound():
    reqs = declared()
    pins = lowest_pins()
    assert sorted(r.name for r in reqs) == sorted(pins), "requirements/lowest.txt pins other packages"
    for req in reqs:
        low, high = bounds(req)
        assert low == pins[req.name], f"{req}: lower bound is not requirements/lowest.txt's {pins[req.name]}"
        assert high is not None, f"{req}: no upper bound"
        major = Version(low).major
        # Below a major release: <N for N>=1 above the lowest's major (0.x: <1, as 0.x releases may break).
        assert Version(high).release == (Version(high).major,) and Version(high).major > major, (
            f"{req}: the upper bound is not a major release above the lower bound"
        )


def test_the_installed_versions_are_inside_the_bounds():
    # What this environment tests (the newest under `make install`, the lowest under `make test-lowest`) must be
    # allowed; an extra's package that is not installed is not checked.
    checked, outside = 0, []
    for req in declared():
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            continue
        checked += 1
        if not req.specifier.contains(version, prereleases=True):
            outside.append(f"{req.name} {version} (pyproject: {req.specifier})")
    assert checked, "none of the dependencies is installed"
    assert not outside, outside
