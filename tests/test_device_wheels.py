"""The GPU machine's wheels (issue 32): ``device/wheels.txt`` is exactly what ``mechinterp[bench]``
needs beyond the device image, a wheel folder is checked for what the image lacks or must keep,
and ``bench/gpu-check`` installs a folder with ``--no-index --no-deps --target`` and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest


from mechinterp.bench import wheels

ROOT = Path(__file__).resolve().parents[1]


def _wheel(folder: Path, name: str, version: str = "1.0", requires: tuple[str, ...] = (), module: str | None = None) -> Path:
    """A minimal real wheel: one module, its METADATA with ``requires``, a RECORD."""
    dist = f"{name.replace('-', '_')}-{version}"
    path = folder / f"{dist}-py3-none-any.whl"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires)
    files = {f"{dist}.dist-info/METADATA": meta, f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    if module:
        files[f"{module}.py"] = "PROBE = 42\n"
    files[f"{dist}.dist-info/RECORD"] = "".join(f"{f},,\n" for f in files) + f"{dist}.dist-info/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as z:
        for f, text in files.items():
            z.writestr(f, text)
    return path


def test_pins_are_exactly_what_the_image_lacks():
    """The pins are the closure of what this environment installed: judged only where this environment holds
    the pinned versions (a later PyPI release resolved by a fresh install is another closure, not a stale pin)."""
    pinned = wheels.pins()
    needed = wheels.pins_from_environment()
    moved = sorted(f"{n} {pinned[n]} pinned, {needed[n]} here" for n in set(pinned) & set(needed) if pinned[n] != needed[n])
    if moved:
        pytest.skip("this environment resolved other versions than device/wheels.txt pins, so it cannot tell whether "
                    "the pins are complete: " + "; ".join(moved))
    assert set(pinned) == set(needed), (
        f"mechinterp/bench/device/wheels.txt is stale: missing {sorted(set(needed) - set(pinned))}, "
        f"extra {sorted(set(pinned) - set(needed))}; regenerate: python -m mechinterp.bench.wheels pins")
    image = wheels.image_packages()
    assert not set(pinned) & (set(image) | set(wheels.NEVER))
    assert {"diffusers", "nnsight", "anthropic"} <= set(pinned)
    assert image["torch"] == "2.11.0" and image["transformers"] == "5.17.0" and image["python"] == "3.12.3"


def test_requirement_markers_are_read_for_the_device_python():
    reqs = ['lazy-importer>=0.1; python_version < "3.15"', 'tomli; python_version < "3.11"', "x; extra == 'bench'",
            "y; extra == 'test'", "Zope.Interface"]
    assert wheels._needs(reqs, ("bench",)) == ["lazy-importer", "x", "zope-interface"]


def test_a_wheel_folder_is_checked_for_the_image(tmp_path):
    _wheel(tmp_path, "alpha", requires=("numpy", "beta>=1", "gamma; extra == 'docs'"))
    _wheel(tmp_path, "beta", requires=("torch",))
    assert wheels.check_folder(tmp_path) == []
    _wheel(tmp_path, "delta", requires=("epsilon",))
    _wheel(tmp_path, "torch", "2.13.0")
    _wheel(tmp_path, "beta", "2.0")
    problems = wheels.check_folder(tmp_path)
    assert problems == ["torch-2.13.0-py3-none-any.whl: the image has torch already (never replace it: its build is the image's own)",
                        "two wheels of beta: keep one version",
                        f"delta-1.0-py3-none-any.whl needs epsilon: in neither the image nor {tmp_path}"]


def test_the_size_check_fails_clearly_past_the_limit(tmp_path, capsys):
    (tmp_path / "big-1.0-py3-none-any.whl").write_bytes(b"\0" * 2**20)
    assert wheels.size_problem(tmp_path, ROOT, limit_mib=10_000) is None
    problem = wheels.size_problem(tmp_path, ROOT, limit_mib=1)
    assert problem.startswith("wheels 1.0 MiB + working tree ") and "> 1 MiB: the device call would be refused" in problem
    assert "together" in capsys.readouterr().out


def test_gpu_check_installs_the_folder_offline_beside_the_image(tmp_path):
    folder, site = tmp_path / "whl", tmp_path / "site"
    folder.mkdir()
    _wheel(folder, "gpucheck-probe", module="gpucheck_probe")
    env = dict(os.environ, PYTHON=sys.executable, MECHINTERP_WHEELS=str(folder), MECHINTERP_SITE=str(site),
               PIP_INDEX_URL="http://127.0.0.1:9/none")  # an index would fail: --no-index must be used
    proc = subprocess.run([str(ROOT / "bench" / "gpu-check"), "--install-only"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (site / "gpucheck_probe.py").exists() and "installed 1 wheels" in proc.stdout
    assert not (site / "torch").exists()  # --no-deps: the image's torch is the one used
    _wheel(folder, "torch", "2.13.0")
    proc = subprocess.run([str(ROOT / "bench" / "gpu-check"), "--install-only"], env=env, capture_output=True, text=True)
    assert proc.returncode == 3 and "image's own builds must stay" in proc.stderr


def test_the_wheel_folder_is_git_ignored():
    assert subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", ".whl/x.whl"]).returncode == 0
