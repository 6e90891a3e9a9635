"""``mechinterp tasks list`` and ``mechinterp tasks show`` through the real dispatcher."""

from __future__ import annotations

import subprocess
import sys

from mechinterp.cli import main
from mechinterp.tasks import FAMILIES, PAIR_FAMILIES, color_tasks


def test_list_prints_every_family_with_size_and_needs(capsys, monkeypatch):
    monkeypatch.delenv("MECHINTERP_DATA_DIR", raising=False)
    assert main(["tasks", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    for info in FAMILIES.values():
        line = next(l for l in out if l.split()[0] == info.name)
        assert str(info.size) in line.split() and info.needs in line
    for info in PAIR_FAMILIES.values():
        assert any(l.split()[0] == f"pairs:{info.name}" and str(info.size) in l.split() for l in out)
    assert next(l for l in out if l.startswith("color ")).rstrip().endswith("in-project")


def test_list_with_a_data_dir_reports_status(capsys, tmp_path):
    assert main(["tasks", "list", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "status" in out.splitlines()[0]
    assert "task list for bucket 'style' not found" in out
    assert out.splitlines()[1].rstrip().endswith("ready")  # colour needs nothing


def test_show_color_prints_five_tasks(capsys):
    assert main(["tasks", "show", "color", "--samples", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# family 'color': 5 of 320")
    ids = {t.task_id for t in color_tasks()}
    assert len(lines) == 6 and all(line.split()[0] in ids for line in lines[1:])
    assert all("in this color" in line for line in lines[1:])


def test_show_pairs(capsys):
    assert main(["tasks", "show", "color", "--pairs", "--n", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# pair family 'color': 3 of 448") and len(lines) == 4 and " -> " in lines[1]


def test_show_errors_are_one_line_on_stderr(capsys, monkeypatch):
    monkeypatch.delenv("MECHINTERP_DATA_DIR", raising=False)
    assert main(["tasks", "show", "colour"]) == 1
    assert "unknown family 'colour'; valid family names: color" in capsys.readouterr().err
    assert main(["tasks", "show", "style"]) == 1
    assert "needs a data directory" in capsys.readouterr().err


def test_every_subcommand_spells_a_sample_count_samples():
    """One flag for "how many tasks": ``--samples`` wherever a subcommand samples tasks (old names kept as aliases)."""
    from mechinterp.cli import build_parser

    parser = build_parser()
    for argv in (["tasks", "show", "color"], ["organisms", "eval"], ["organisms", "claims"], ["power", "--rate", "0.9"],
                 ["bench"]):
        assert parser.parse_args(argv + ["--samples", "3"]).samples == 3, argv
    assert parser.parse_args(["tasks", "show", "color", "--n", "3"]).samples == 3  # the old spellings still parse
    assert parser.parse_args(["organisms", "eval", "--claims-n", "3"]).samples == 3


def test_console_script_entry_point():
    result = subprocess.run([sys.executable, "-m", "mechinterp.cli", "tasks", "show", "color", "--n", "2"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 3
