"""docs/custom-claims.md lists exactly what the claim loader accepts (families, task families, markers, questions)."""

from __future__ import annotations

import re
from itertools import product
from pathlib import Path

import pytest

from mechinterp.vocabulary import FAMILIES, TASK_FAMILIES, markers
from mechinterp.judges.questions import QUESTIONS

DOC = (Path(__file__).resolve().parents[1] / "docs" / "custom-claims.md").read_text()


def _choices(key: str) -> set[str]:
    """The ``a | b | c`` list in the comment of the template's ``key = ...`` line."""
    line = next(line for line in DOC.splitlines() if line.startswith(f"{key} = "))
    comment = line.split("#", 1)[1].split("(")[0]
    return {part.strip() for part in comment.split("|")}


def test_template_lists_the_loaders_choices():
    assert _choices("family") == set(FAMILIES)
    assert _choices("tasks") == set(TASK_FAMILIES)
    assert _choices("markers") == set(markers())


def test_question_row_lists_every_question():
    row = next(line for line in DOC.splitlines() if line.startswith("| `question` |"))
    listed = set()
    for clause in row.split(":", 1)[1].split("(")[0].split(";"):
        banks, props = clause.split(" with ")
        listed |= {f"{b}.{p}" for b, p in product(re.findall(r"`(\w+)`", banks), re.findall(r"`(\w+)`", props))}
    assert listed == set(QUESTIONS)


# -- the docs' own claim examples, loaded and run --------------------------------------------------------
pytest_plugins = ["pytester"]
LAB_FILE = "template.claims.toml"  # what the docs' first example names its file: my-lab/claims/template.claims.toml
DOCS_WITH_CLAIMS = ("custom-claims.md", "regression.md")


def _ids(block: str) -> list[str]:
    import tomllib

    return [c["id"] for c in tomllib.loads(block).get("claim", [])]


def _shipped_ids() -> set[str]:
    from mechinterp.claims import load_registry

    return {c.id for c in load_registry()}


def _lab_files(doc_blocks) -> dict[str, str]:
    """The docs' claim examples as a lab writes them: the first section's grown into the one file its first
    names, the one under "Adding an experiment" in its own (it needs that section's kind registered), any of
    docs/regression.md in its own; an example that shows a shipped claim is not the lab's (its id is taken)."""
    shipped = _shipped_ids()
    mine = lambda blocks: [b for b in blocks if not set(_ids(b)) <= shipped]  # noqa: E731
    own = mine(doc_blocks("custom-claims.md", "toml", "Your own claims"))
    kind = mine(doc_blocks("custom-claims.md", "toml", "Adding an experiment"))
    assert own[0].startswith(f"# my-lab/claims/{LAB_FILE}\n")
    files = {LAB_FILE: "\n".join(own), "refoff.claims.toml": "schema = 1\n" + "\n".join(kind)}
    files |= {f"regression-{i}.claims.toml": "schema = 1\n" + b for i, b in enumerate(mine(doc_blocks("regression.md", "toml")))}
    return files


def _every_toml_example(doc_blocks) -> list[str]:
    return [b for name in DOCS_WITH_CLAIMS for b in doc_blocks(name, "toml")]


def test_every_toml_example_of_the_docs_loads(ref_off, doc_blocks, tmp_path):
    """Each claim the docs show loads, in the files a lab would keep them in (the relation naming a shipped claim
    among them), and an example that shows a shipped claim is that claim (all but its shortened statement)."""
    from dataclasses import replace

    from mechinterp.claims import claims_by_id, load_registry

    shipped = claims_by_id(load_registry())
    files = _lab_files(doc_blocks)
    paths = []
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        paths.append(tmp_path / name)
    examples = _every_toml_example(doc_blocks)
    loaded = claims_by_id(load_registry(paths))
    assert sorted(loaded) == sorted(cid for b in examples for cid in _ids(b) if cid not in shipped) and len(loaded) == 3
    shown = [b for b in examples if set(_ids(b)) <= set(shipped)]
    for i, block in enumerate(shown):  # a registry of its own (not a claim file): it stands alone
        (tmp_path / f"shown-{i}.toml").write_text("schema = 1\n" + block)
        for claim in load_registry(tmp_path / f"shown-{i}.toml"):
            ship = shipped[claim.id]
            assert replace(claim, statement=ship.statement, where=ship.where) == ship
    assert len(shown) == 1
    rel = loaded["rel[ko.template>ko.content]-color"]
    assert (rel.a, rel.b) == ("knockout[ref->text.template]-color", "knockout[ref->text.content]-color")
    assert rel.b in shipped and rel.a not in shipped and not rel.unpaired
    # the lab file alone loads too, its relation resolved against the paper's registry
    assert [c.id for c in load_registry(tmp_path / LAB_FILE)] == _ids(files[LAB_FILE])


def test_a_user_claim_may_not_reuse_a_shipped_id(doc_blocks, tmp_path):
    """A claim file that defines a shipped claim's id again is one error naming the id and where it is defined."""
    from mechinterp.claims import load_registry

    (template,) = doc_blocks("custom-claims.md", "toml", "Your own claims")[:1]
    path = tmp_path / "mine.claims.toml"
    path.write_text(template.replace("knockout[ref->text.template]-color", "knockout[ref->text.content]-color"))
    with pytest.raises(ValueError) as err:
        load_registry(path)
    assert str(err.value) == ("claim id 'knockout[ref->text.content]-color' is already defined (in the paper's "
                              "registry, mechinterp/claims/registry.toml); claim ids must be unique in a run")


def test_the_docs_relation_example_runs_under_pytest(doc_blocks, pytester, monkeypatch):
    """The docs' lab file, collected by pytest: every claim in it is a test, and its relation between the lab's
    claim and a shipped one runs and is decided on the default organism (no data dir, no key)."""
    import json

    for var in ("ANTHROPIC_API_KEY", "MECHINTERP_DATA_DIR", "MECHINTERP_STRICT", "MECHINTERP_MODEL"):
        monkeypatch.delenv(var, raising=False)
    lab = pytester.path / "my-lab" / "claims"
    lab.mkdir(parents=True)
    (lab / LAB_FILE).write_text(_lab_files(doc_blocks)[LAB_FILE])
    listed = pytester.runpytest("my-lab", "--collect-only", "-q")
    assert listed.ret == pytest.ExitCode.OK, listed.stdout.str()
    assert "2 tests collected" in listed.stdout.str()
    run = pytester.runpytest("my-lab", "-k", "rel", "--mi-report", str(pytester.path / "run"),
                             "--mi-cache-dir", str(pytester.path / "cache"))
    out = run.stdout.str()
    assert run.ret == pytest.ExitCode.OK, out
    results = json.loads((pytester.path / "run" / "results.json").read_text())
    # the default organism routes the colour through the template's padding tokens: the relation holds
    rel = results["rel[ko.template>ko.content]-color"]
    assert rel["decision"] == "holds" and rel["n"] > 0 and rel["a"] == "knockout[ref->text.template]-color", rel
