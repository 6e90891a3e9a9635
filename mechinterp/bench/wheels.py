"""The wheels a GPU machine's image lacks, prepared on a CPU machine (``bench/prepare-wheels``, issue 32).

The device image (``device/image.txt``: Python 3.12, torch 2.11 CUDA, transformers 5.17, ...) has no
network, so what ``mechinterp[bench]`` needs beyond it travels with the working tree as wheels, at
most 64 MiB together with the tree. ``device/wheels.txt`` pins them: the closure of the project's
requirements, as this environment resolved and tested them, minus the image's packages
(``pins_from_environment`` computes it; a test keeps the file equal to it). ``prepare`` downloads
exactly those (cp312, manylinux x86_64), builds the project's own wheel, and checks that every
wheel's needs are met by the image or the folder and that the total fits.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement

HERE = Path(__file__).resolve().parent / "device"
IMAGE_FILE, PINS_FILE = HERE / "image.txt", HERE / "wheels.txt"
LIMIT_MIB = 64  # the working tree plus carried files, per device call
NEVER = ("torch", "transformers", "triton")  # the image's CUDA builds: a wheel of these would replace them
#: the device's interpreter, for requirement markers
DEVICE_ENV = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
              "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
              "implementation_name": "cpython", "platform_python_implementation": "CPython"}
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux_2_5_x86_64", "manylinux1_x86_64")


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503: lower case, runs of ``-_.`` as ``-``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _read_list(path: Path) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            out[canonical(name)] = version or None
    return out


def image_packages() -> dict[str, str | None]:
    """The device image's packages: canonical name -> version where one was seen (else ``None``)."""
    return _read_list(IMAGE_FILE)


def pins() -> dict[str, str]:
    """The pinned wheels to bring: canonical name -> version (``device/wheels.txt``)."""
    found = _read_list(PINS_FILE)
    unpinned = sorted(n for n, v in found.items() if not v)
    if unpinned:
        raise ValueError(f"{PINS_FILE}: every wheel needs an exact version (NAME==VERSION); unpinned: {', '.join(unpinned)}")
    return found  # type: ignore[return-value]


def _needs(requires: list[str] | None, extras: tuple[str, ...] = ()) -> list[str]:
    """The requirement names that apply on the device (markers evaluated for Python 3.12 on Linux)."""
    out = []
    for text in requires or []:
        req = Requirement(text)
        if req.marker is None or any(Marker(str(req.marker)).evaluate({**DEVICE_ENV, "extra": e}) for e in ("", *extras)):
            out.append(canonical(req.name))
    return out


def pins_from_environment(root: str = "mechinterp", extras: tuple[str, ...] = ("bench",)) -> dict[str, str]:
    """Every distribution ``root[extras]`` needs, as installed in *this* environment, that the image
    lacks (the image's packages are taken with their own needs): canonical name -> installed version.
    ``PackageNotFoundError`` names a requirement that is not installed here."""
    image = image_packages()
    found: dict[str, str] = {}
    todo = [(canonical(root), extras)]
    while todo:
        name, ext = todo.pop()
        if name in found or (name in image and name != canonical(root)):
            continue
        dist = metadata.distribution(name)
        if name != canonical(root):
            found[name] = dist.version
        todo += [(n, ()) for n in _needs(dist.requires, ext)]
    return dict(sorted(found.items()))


def _wheel_name(path: Path) -> str:
    return canonical(path.name.split("-", 1)[0])


def _wheel_requires(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        text = z.read(meta).decode()
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]


def check_folder(folder: Path, extras: tuple[str, ...] = ("bench",)) -> list[str]:
    """Problems of a wheel folder for the device (empty when none): a wheel of a package the image
    has (torch, transformers, ...), two versions of one package, or a need that neither the image
    nor the folder meets. The project's own wheel is read with ``extras``."""
    wheels = sorted(Path(folder).glob("*.whl"))
    names = [_wheel_name(w) for w in wheels]
    image = image_packages()
    problems = [f"{w.name}: the image has {n} already (never replace it: its build is the image's own)"
                for w, n in zip(wheels, names) if n in image or n in NEVER]
    problems += [f"two wheels of {n}: keep one version" for n in sorted(set(names)) if names.count(n) > 1]
    have = set(names) | set(image)
    for w, n in zip(wheels, names):
        missing = sorted(set(_needs(_wheel_requires(w), extras if n == "mechinterp" else ())) - have)
        if missing:
            problems.append(f"{w.name} needs {', '.join(missing)}: in neither the image nor {folder}")
    return problems


def tree_bytes(root: Path) -> int:
    """Bytes of the working tree that travels to the device (tracked and untracked-not-ignored files)."""
    out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         capture_output=True, check=True).stdout
    return sum((root / p).stat().st_size for p in out.decode().split("\0") if p and (root / p).is_file())


def size_problem(folder: Path, root: Path, limit_mib: float = LIMIT_MIB) -> str | None:
    """Print the sizes; the problem when the wheels and the working tree exceed ``limit_mib`` together."""
    found = list(Path(folder).glob("*.whl"))
    wheels, tree = sum(w.stat().st_size for w in found), tree_bytes(root)
    total = (wheels + tree) / 2**20
    print(f"prepare-wheels: {len(found)} wheels, {wheels / 2**20:.1f} MiB in {folder}; working tree {tree / 2**20:.1f} MiB; "
          f"together {total:.1f} MiB of the {limit_mib:g} MiB a device call carries")
    if total > limit_mib:
        return (f"wheels {wheels / 2**20:.1f} MiB + working tree {tree / 2**20:.1f} MiB = {total:.1f} MiB > {limit_mib:g} MiB: "
                f"the device call would be refused (try --no-project, or carry less)")
    return None


def _download(pinned: dict[str, str], dest: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
           "--implementation", "cp", "--abi", "cp312", "--abi", "abi3", "--abi", "none", "--platform", "any", "-d", str(dest)]
    for p in PLATFORMS:
        cmd += ["--platform", p]
    subprocess.run(cmd + [f"{n}=={v}" for n, v in pinned.items()], check=True)


def prepare(root: Path, folder: Path, with_project: bool = True) -> int:
    """Fill ``folder`` with exactly the pinned wheels (and the project's), check them; 0 when good."""
    pinned = pins()
    bad = sorted(set(pinned) & (set(image_packages()) | set(NEVER)))
    if bad:
        print(f"prepare-wheels: {PINS_FILE} names packages the image has: {', '.join(bad)}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        _download(pinned, Path(tmp))
        if with_project:
            subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp,
                            str(root)], check=True)
        if folder.exists():
            shutil.rmtree(folder)
        shutil.copytree(tmp, folder)
    problems = check_folder(folder)
    size = size_problem(folder, root)
    problems += [size] if size else []
    for p in problems:
        print(f"prepare-wheels: {p}", file=sys.stderr)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    """``python -m mechinterp.bench.wheels [prepare|pins|check]``: the entry point of ``bench/prepare-wheels``."""
    p = argparse.ArgumentParser(prog="bench/prepare-wheels", description=__doc__.splitlines()[0])
    p.add_argument("command", nargs="?", default="prepare", choices=("prepare", "pins", "check"),
                   help="prepare: download and check (default); pins: print wheels.txt from this environment; "
                        "check: check an existing folder")
    p.add_argument("--dir", default=".whl", help="the wheel folder (default: .whl, git-ignored)")
    p.add_argument("--no-project", action="store_true", help="leave out the project's own wheel")
    args = p.parse_args(argv)
    root = Path.cwd()
    if args.command == "pins":
        print("\n".join(f"{n}=={v}" for n, v in pins_from_environment().items()))
        return 0
    if args.command == "check":
        problems = check_folder(Path(args.dir))
        size = size_problem(Path(args.dir), root)
        problems += [size] if size else []
        for line in problems:
            print(f"prepare-wheels: {line}", file=sys.stderr)
        return 1 if problems else 0
    return prepare(root, Path(args.dir), with_project=not args.no_project)


if __name__ == "__main__":
    sys.exit(main())
