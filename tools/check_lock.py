"""Check that the lock files are current and that this environment is exactly the lock.

    python tools/check_lock.py               # fails, saying what differs
    python tools/check_lock.py --extraneous  # the installed packages the lock does not name

`make lock` writes requirements.lock (the project with every extra: what `make install`
installs) and requirements-runtime.lock (the project alone: what the image installs). They
are current when every requirement of pyproject.toml is met by a pin, and the runtime lock
pins what the full lock pins. The environment matches when the installed distributions are
the full lock's pins for this interpreter and platform, no more and no fewer; the project
itself and the venv's own installers are not compared.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
FULL_LOCK = ROOT / "requirements.lock"
RUNTIME_LOCK = ROOT / "requirements-runtime.lock"
NOT_COMPARED = {"pip", "setuptools", "wheel"}


def lock_pins(path: Path) -> dict[NormalizedName, Version]:
    """The `name==version` lines of a pip requirements file whose markers hold here."""
    pins: dict[NormalizedName, Version] = {}
    logical = path.read_text().replace("\\\n", " ")
    for line in logical.splitlines():
        line = line.split(" --hash", 1)[0].split("#", 1)[0].strip()
        if not line or line.startswith("-"):  # an option of pip's, not a requirement
            continue
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        (specifier,) = requirement.specifier
        if specifier.operator != "==":
            raise SystemExit(f"{path.name}: {line!r} is not a pin")
        pins[canonicalize_name(requirement.name)] = Version(specifier.version)
    return pins


def project() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def requirements(*, extras: bool) -> list[Requirement]:
    """The project's requirements that apply here, with those of every extra if asked."""
    declared = project()
    found = [(Requirement(text), "") for text in declared.get("dependencies", [])]
    if extras:
        for extra, texts in declared.get("optional-dependencies", {}).items():
            found += [(Requirement(text), extra) for text in texts]
    return [
        requirement
        for requirement, extra in found
        if requirement.marker is None or requirement.marker.evaluate({"extra": extra})
    ]


def unmet(path: Path, wanted: list[Requirement]) -> list[str]:
    pins = lock_pins(path)
    problems = []
    for requirement in wanted:
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is None:
            problems.append(f"{path.name} has no {requirement.name} ({requirement})")
        elif not requirement.specifier.contains(pinned, prereleases=True):
            problems.append(f"{path.name} pins {requirement.name}=={pinned}, not {requirement}")
    return problems


def installed() -> dict[NormalizedName, Version]:
    own = canonicalize_name(str(project()["name"]))
    return {
        name: Version(distribution.version)
        for distribution in metadata.distributions()
        if (name := canonicalize_name(distribution.metadata["Name"])) not in NOT_COMPARED
        and name != own
    }


def lock_problems() -> list[str]:
    """Why the lock files are not those of pyproject.toml, if they are not."""
    problems = unmet(FULL_LOCK, requirements(extras=True))
    problems += unmet(RUNTIME_LOCK, requirements(extras=False))
    full = lock_pins(FULL_LOCK)
    for name, version in lock_pins(RUNTIME_LOCK).items():
        if full.get(name) != version:
            problems.append(f"{RUNTIME_LOCK.name} pins {name}=={version}, {FULL_LOCK.name} not")
    return [*problems, *(["run `make lock`"] if problems else [])]


def environment_problems() -> list[str]:
    """How this environment differs from the full lock."""
    pins, present = lock_pins(FULL_LOCK), installed()
    problems = []
    for name in sorted(pins.keys() | present.keys()):
        if name not in present:
            problems.append(f"{name}=={pins[name]} is locked but not installed")
        elif name not in pins:
            problems.append(f"{name}=={present[name]} is installed but not locked")
        elif present[name] != pins[name]:
            problems.append(f"{name} is {present[name]}, locked at {pins[name]}")
    # -B: the stamp of the last install may be newer than the lock (a package added by hand).
    return [*problems, *(["run `make -B install`"] if problems else [])]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--extraneous", action="store_true", help="print the installed packages not locked"
    )
    args = parser.parse_args()
    if args.extraneous:
        print("\n".join(sorted(installed().keys() - lock_pins(FULL_LOCK).keys())))
        return 0
    problems = lock_problems() or environment_problems()
    for problem in problems:
        print(f"check-lock: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
