"""The claim registry: completeness against the paper's tables, validation, resolution."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from mechinterp.claims import (
    EXPERIMENTS, claims_by_id, default_registry_path, load_registry, load_tables, registry_path,
)
from mechinterp.vocabulary import markers
from mechinterp.stats import Decision

CLAIMS = load_registry()
INDEX = claims_by_id(CLAIMS)
ID_PATTERN = re.compile(r"^(lens|knockout|patching|refdrop|rel)\[[^\]\s]+\]-(color|style|human|add|remove|cross)$")


def test_every_table_cell_of_the_paper_is_a_claim():
    tables = {t.id: t for t in load_tables()}
    assert sorted(tables) == ["D1", "T1", "T2", "T3"]
    shape = {tid: (len(t.rows), len(t.columns)) for tid, t in tables.items()}
    assert shape == {"T1": (1, 5), "T2": (2, 3), "T3": (3, 3), "D1": (4, 3)}
    for t in tables.values():
        assert len(t.cells) == len(t.rows) * len(t.columns), f"{t.id} has empty cells"
        for cid in t.cells.values():
            assert INDEX[cid].paper is not None and INDEX[cid].csv is not None


def test_table_2_is_the_subset_of_d1_with_the_same_claims():
    tables = {t.id: t for t in load_tables()}
    for key, cid in tables["T2"].cells.items():
        assert tables["D1"].cells[key] == cid


def test_ids_follow_the_documented_scheme_and_are_pytest_friendly():
    for c in CLAIMS:
        assert ID_PATTERN.match(c.id), c.id
        assert "::" not in c.id and " " not in c.id
        # the subject "cross" is exactly a relation between cells of different families
        assert c.id.endswith("-cross") == (c.is_relation and INDEX[c.a].family != INDEX[c.b].family), c.id
    assert len(INDEX) == len(CLAIMS)


def test_markers_come_from_the_families_and_the_experiment_table():
    assert list(markers()) == ["color", "style", "human", "scene", "lens", "knockout", "refdrop", "patching"]
    for c in CLAIMS:
        assert c.markers and set(c.markers) <= set(markers()), c.id


def test_cell_claims_record_experiment_question_and_polarity():
    for c in CLAIMS:
        if c.is_relation:
            continue
        assert c.experiment.name in EXPERIMENTS and c.question and c.polarity in ("pass", "inverted")
        assert EXPERIMENTS[c.experiment.name].marker in c.markers and c.family in c.markers
    # parameters as in the paper
    assert INDEX["lens[single.9]-color"].experiment.as_dict() == {
        "name": "t2i_lens", "site": "single.9", "same_layer": True, "steps": 1, "tokens": "text"}
    assert INDEX["knockout[ref->text.padding]-style"].experiment.get("dest") == "text.padding"
    assert INDEX["patching[double.7:text]-style"].tasks == ("style", "style_real")
    assert INDEX["refdrop[single.9]-color"].experiment.get("cutoff") == "single.9"
    assert INDEX["refdrop[double.7]-style"].experiment.get("cutoff") == "double.7"


def test_polarity_is_inverted_exactly_where_the_readme_says():
    inverted = sorted(c.id for c in CLAIMS if c.polarity == "inverted" and c.has_released_data)
    assert inverted == ["knockout[ref->image]-color", "knockout[ref->image]-human",
                        "knockout[ref->image]-style", "lens[double.7]-human"]
    # ref-drop reuses the ko_image question, so it reports a destroy rate too
    assert {c.polarity for c in CLAIMS if c.id.startswith("refdrop")} == {"inverted"}
    assert INDEX["lens[double.7]-human"].success(False) is True


def test_relational_claims_of_the_text_are_present():
    rel = {c.id: c for c in CLAIMS if c.is_relation}
    assert str(rel["rel[ko.text>ko.image]-color"].hypothesis) == "a - b >= 0.5"  # "far more": a margin
    assert str(rel["rel[ko.text>ko.image]-style"].hypothesis) == "a - b >= 0.5"
    assert rel["rel[ko.image>ko.text]-human"].a == "knockout[ref->image]-human"
    assert str(rel["rel[patch.padding~patch.all]-style"].hypothesis) == "|a - b| <= 0.15"
    assert str(rel["rel[patch.padding>>patch.content]-color"].hypothesis) == "a - b >= 0.5"
    assert str(INDEX["lens[double.7]-human"].hypothesis) == "rate <= 0.05"  # lens identity never observed
    for c in rel.values():
        assert not INDEX[c.a].is_relation and not INDEX[c.b].is_relation


def test_claims_without_released_data_are_marked():
    no_data = sorted(c.id for c in CLAIMS if not c.is_relation and not c.has_released_data)
    assert no_data == ["lens[double.5..double.7]-style", "lens[single.9..single.10]-color",
                       "patching[single.9..single.10:text.padding]-color",
                       "refdrop[double.7+]-style", "refdrop[double.7]-style", "refdrop[embed+:crosses.double.7]-style",
                       "refdrop[embed+:crosses.single.9]-color", "refdrop[embed..double.6]-style",
                       "refdrop[embed..single.8]-color", "refdrop[embed]-color",
                       "refdrop[embed]-style", "refdrop[single.9+]-color", "refdrop[single.9]-color"]
    assert all("no released CSV" in INDEX[c].where for c in no_data)


def test_questions_and_polarities_agree_with_the_judges_question_bank():
    questions = pytest.importorskip("mechinterp.judges.questions").QUESTIONS
    for c in CLAIMS:
        if not c.is_relation:
            assert c.question in questions, f"{c.id}: unknown question {c.question!r}"
            assert getattr(questions[c.question], "polarity", c.polarity) == c.polarity, c.id


def test_claim_decide_dispatches_on_kind():
    from mechinterp.stats import PairTally, Tally

    assert INDEX["knockout[ref->text]-color"].decide(Tally(276, 320))[0] is Decision.HOLDS
    # the released human knockouts, paired by task: 35 both, 34 image only, 6 text only, 15 neither
    assert INDEX["rel[ko.image>ko.text]-human"].decide(PairTally(35, 34, 6, 15))[0] is Decision.HOLDS
    with pytest.raises(ValueError, match="paired counts"):
        INDEX["rel[ko.image>ko.text]-human"].decide(Tally(69, 90))
    with pytest.raises(ValueError, match="one arm"):
        INDEX["knockout[ref->text]-color"].decide(PairTally(1, 2, 3, 4))


def test_claims_are_hashable_and_frozen():
    assert len({*CLAIMS}) == len(CLAIMS)
    with pytest.raises(AttributeError):
        CLAIMS[0].id = "x"  # type: ignore[misc]


def test_registry_resolves_from_a_users_repository(tmp_path: Path):
    (tmp_path / "claims").mkdir()
    shutil.copy(default_registry_path(), tmp_path / "claims" / "registry.toml")
    for where in (tmp_path, tmp_path / "claims", tmp_path / "claims" / "registry.toml"):
        assert registry_path(where) == tmp_path / "claims" / "registry.toml"
    assert [c.id for c in load_registry(tmp_path)] == [c.id for c in CLAIMS]
    with pytest.raises(FileNotFoundError, match="no claim registry"):
        registry_path(tmp_path / "nowhere")


GOOD = """
[[claim]]
id = "knockout[ref->text]-color"
family = "color"
tasks = ["color"]
experiment = { name = "knockout", source = "ref", dest = "text" }
question = "ko_text.color"
markers = ["color", "knockout"]
hypothesis = "rate >= 0.5"
"""


@pytest.mark.parametrize("old,new,match", [
    ('family = "color"', 'family = "colour"', "family 'colour' is not one of color, style"),
    ('name = "knockout"', 'name = "ko"', "experiment 'ko' is not one of"),
    ('dest = "text"', 'dest = "text", site = "double.99x"', "site 'double.99x' is not a site"),
    ('question = "ko_text.color"', 'question = "ko_text.color"\npolarity = "inverted"',
     "polarity 'inverted' contradicts its question 'ko_text.color', whose polarity is 'pass'"),
    ('question = "ko_text.color"', 'question = "ko_text.style"',
     "question 'ko_text.style' asks about 'style', but the claim's family 'color' is judged by *.color questions"),
    ('family = "color"\ntasks = ["color"]', 'family = "human"\ntasks = ["human"]',
     "family 'human' is judged by *.identity questions"),
    ('question = "ko_text.color"', 'question = "ko.colour"', "unknown question 'ko.colour'; valid questions: ko_image.color"),
    ('question = "ko_text.color"', 'question = "patching.scene"', "unknown question 'patching.scene'"),
    ('question = "ko_text.color"', 'question = "patching.color"', "question 'patching.color' judges 'patching' bundles, not 'knockout'"),
    ('name = "knockout", source = "ref", dest = "text" }\nquestion = "ko_text.color"',
     'name = "patching", site = "single.9", tokens = "text.padding" }\nquestion = "patching.color"',
     "question 'patching.color' labels the 'text' variant but the experiment writes 'text.padding'"),
    ('markers = ["color", "knockout"]', 'markers = ["color"]', "must include 'knockout'"),
    ('markers = ["color", "knockout"]', 'markers = ["color", "knockout", "fast"]', "marker 'fast'"),
    ('hypothesis = "rate >= 0.5"', 'hypothesis = "a - b > 0"', "must be about 'rate'"),
    ('tasks = ["color"]', 'tasks = ["colour"]', "task family 'colour'"),
])
def test_invalid_registries_are_rejected_with_the_bad_value(tmp_path: Path, old, new, match):
    path = tmp_path / "registry.toml"
    path.write_text(GOOD.replace(old, new))
    with pytest.raises(ValueError, match=re.escape(match)):
        load_registry(path)


def test_duplicate_ids_bad_relations_and_cells_are_rejected(tmp_path: Path):
    path = tmp_path / "registry.toml"
    path.write_text(GOOD + GOOD)
    with pytest.raises(ValueError, match="duplicated"):
        load_registry(path)
    path.write_text(GOOD + '[[claim]]\nid = "rel[x>y]-color"\na = "knockout[ref->text]-color"\nb = "nope"\nhypothesis = "a - b > 0"\n')
    with pytest.raises(ValueError, match="must name earlier cell claims"):
        load_registry(path)
    path.write_text(GOOD.replace('hypothesis', 'cells = ["T9:x:y"]\nhypothesis'))
    with pytest.raises(ValueError, match="T9:x:y"):
        load_registry(path)


TABLE_1_ORDER = {  # Table 1's adjacent pairs (a above b), and colour > human: the one both CPU organisms decide
    "rel[lens.color>lens.style]-cross": ("lens[single.9]-color", "lens[double.7]-style"),
    "rel[lens.style>lens.add]-cross": ("lens[double.7]-style", "lens[double.7]-add"),
    "rel[lens.style>lens.remove]-cross": ("lens[double.7]-style", "lens[double.7]-remove"),
    "rel[lens.add>lens.human]-cross": ("lens[double.7]-add", "lens[double.7]-human"),
    "rel[lens.remove>lens.human]-cross": ("lens[double.7]-remove", "lens[double.7]-human"),
    "rel[lens.color>lens.human]-cross": ("lens[single.9]-color", "lens[double.7]-human"),
}


def test_table_1s_ordering_is_six_unpaired_relations_between_its_cells():
    t1 = {cid for t in load_tables() if t.id == "T1" for cid in t.cells.values()}
    assert {c.id: (c.a, c.b) for c in CLAIMS if c.unpaired} == TABLE_1_ORDER
    for cid, (a, b) in TABLE_1_ORDER.items():
        c = INDEX[cid]
        assert {a, b} <= t1 and c.where == "Table 1" and str(c.hypothesis) == "a - b > 0" and c.family is None
        assert INDEX[a].paper.value > INDEX[b].paper.value  # the paper's own order
        assert "surface more reliably" in c.statement or "never carried by the text tokens" in c.statement
        assert c.kind == "unpaired" and INDEX[a].draws != INDEX[b].draws
    # each runs in one job that has what both cells need
    assert INDEX["rel[lens.color>lens.human]-cross"].markers == ("human", "lens")
    assert INDEX["rel[lens.color>lens.style]-cross"].markers == ("style", "lens")
    assert INDEX["rel[lens.add>lens.human]-cross"].markers == ("scene", "lens")
    assert set(INDEX["rel[lens.style>lens.add]-cross"].markers) == {"style", "scene", "lens"}  # both cells': the default
    # the relations of the text stay paired: both cells draw the same tasks
    for c in CLAIMS:
        if c.is_relation and c.id not in TABLE_1_ORDER:
            assert c.kind == "paired" and INDEX[c.a].draws == INDEX[c.b].draws, c.id


_CELLS = '''schema = 1
[[claim]]
id = "knockout[ref->text.x]-color"
statement = "s"
family = "color"
tasks = ["color"]
experiment = { name = "knockout", source = "ref", dest = "text", blocks = "all" }
question = "ko_text.color"
markers = ["color", "knockout"]
hypothesis = "rate >= 0.5"
[[claim]]
id = "knockout[ref->text.y]-color"
statement = "s"
family = "color"
tasks = ["color"]
experiment = { name = "knockout", source = "ref", dest = "text.padding", blocks = "all" }
question = "ko_text_padding.color"
markers = ["color", "knockout"]
hypothesis = "rate >= 0.5"
[[claim]]
id = "knockout[ref->text.x]-style"
statement = "s"
family = "style"
tasks = ["style"]
experiment = { name = "knockout", source = "ref", dest = "text", blocks = "all" }
question = "ko_text.style"
markers = ["style", "knockout"]
hypothesis = "rate >= 0.5"
'''


def _relation(a: str, b: str, extra: str = "") -> str:
    return (f'[[claim]]\nid = "rel[x>y]-cross"\nstatement = "s"\na = "{a}"\nb = "{b}"\nhypothesis = "a - b > 0"\n'
            + extra)


def test_a_relation_is_unpaired_exactly_when_its_cells_draw_different_tasks(tmp_path):
    path = tmp_path / "r.claims.toml"
    path.write_text(_CELLS + _relation("knockout[ref->text.x]-color", "knockout[ref->text.x]-style"))
    rel = claims_by_id(load_registry(path))["rel[x>y]-cross"]
    assert rel.unpaired and rel.family is None and rel.markers == ("color", "knockout", "style")
    path.write_text(_CELLS + _relation("knockout[ref->text.x]-color", "knockout[ref->text.y]-color"))
    rel = claims_by_id(load_registry(path))["rel[x>y]-cross"]
    assert not rel.unpaired and rel.family == "color"


@pytest.mark.parametrize("extra,match", [
    ('markers = ["style", "knockout", "lens"]\n', r"markers \['lens'\] are not its cells'"),
    ('markers = ["knockout"]\n', "must keep a family of its cells"),
    ('markers = ["style"]\n', r"must keep the experiment markers both cells carry: \['knockout'\]"),
    ('markers = "style"\n', "must be a list of marker names"),
])
def test_a_relations_own_markers_are_validated_when_the_registry_is_read(tmp_path, extra, match):
    path = tmp_path / "bad.claims.toml"
    path.write_text(_CELLS + _relation("knockout[ref->text.x]-color", "knockout[ref->text.x]-style", extra))
    with pytest.raises(ValueError, match=match):
        load_registry(path)
    good = tmp_path / "good.claims.toml"
    good.write_text(_CELLS + _relation("knockout[ref->text.x]-color", "knockout[ref->text.x]-style",
                                       'markers = ["style", "knockout"]\n'))
    assert claims_by_id(load_registry(good))["rel[x>y]-cross"].markers == ("style", "knockout")


def test_a_relation_of_a_cell_with_itself_is_an_error(tmp_path):
    path = tmp_path / "same.claims.toml"
    path.write_text(_CELLS + _relation("knockout[ref->text.x]-color", "knockout[ref->text.x]-color"))
    with pytest.raises(ValueError, match="a and b name the same claim"):
        load_registry(path)


def test_an_unpaired_relation_decides_on_two_arms_counts():
    from mechinterp.stats import ArmsTally, PairTally, Tally

    rel = INDEX["rel[lens.color>lens.human]-cross"]
    decision, ci = rel.decide(ArmsTally(Tally(320, 320), Tally(0, 90)))
    assert decision is Decision.HOLDS and ci.low > 0.9
    with pytest.raises(ValueError, match=r"is unpaired: it needs two arms' counts \(an ArmsTally\)"):
        rel.decide(PairTally(n10=5))
