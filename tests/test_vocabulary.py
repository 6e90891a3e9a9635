"""The one vocabulary: a new experiment kind is one table row plus its function (the docs' example, run)."""

from __future__ import annotations

import pytest

from mechinterp import vocabulary
from mechinterp.vocabulary import EXPERIMENTS, OLD_NAMES
from mechinterp.claims import load_registry
from mechinterp.suite.models import resolve_model

SECTION = "Adding an experiment"  # docs/custom-claims.md's; the ``ref_off`` fixture (conftest) registers its kind


def test_the_table_is_what_every_reader_uses():
    from mechinterp.judges.questions import QUESTIONS

    assert {k.name: k.marker for k in vocabulary.EXPERIMENTS.values()} == {
        "t2i_lens": "lens", "knockout": "knockout", "refdrop": "refdrop", "patching": "patching"}
    for q in QUESTIONS.values():  # every question's roles are its experiment kind's
        assert q.roles == vocabulary.kind_of_question(q.experiment).roles, q.id
    assert vocabulary.FAMILIES["human"].question == "identity"
    with pytest.raises(ValueError, match="already registered"):
        vocabulary.register(vocabulary.EXPERIMENTS["knockout"])


def test_a_new_experiment_kind_is_one_entry_and_its_function(ref_off, doc_blocks, tmp_path):
    """The docs' example: registered in one call, it loads, gets its marker and runs through the runner."""
    import mechinterp
    from mechinterp.bench.suite_cost import claim_kind
    from mechinterp.judges import ColorJudge
    from mechinterp.suite.gencache import CachingModel, GenerationCache
    from mechinterp.suite.runner import ClaimRunner

    assert vocabulary.markers()["refoff"] == "reference-off claims"
    (claim_toml,) = doc_blocks("custom-claims.md", "toml", SECTION)
    path = tmp_path / "refoff.claims.toml"
    path.write_text("schema = 1\n" + claim_toml)
    (claim,) = load_registry(path)
    assert claim.experiment.name == "ref_off" and claim.markers == ("color", "refoff") and claim.polarity == "pass"
    with pytest.raises(ValueError, match="no released-verdict replay for experiment 'ref_off'"):
        claim_kind(claim)

    model = CachingModel(mechinterp.load(resolve_model("padding-routed"), device="cpu"), GenerationCache(tmp_path))
    judge = ColorJudge()
    outcome = ClaimRunner(model, lambda q: judge, looks=1).run(claim)
    assert outcome.decision.value == "holds", outcome.summary()
    assert outcome.rows[0].question_id == "ko_text.color"
    assert [im["role"] for im in outcome.rows[0].images] == ["reference", "i2i_baseline", "knockout_output"]


def test_an_unregistered_kind_is_a_load_time_error(doc_blocks, tmp_path):
    (claim_toml,) = doc_blocks("custom-claims.md", "toml", SECTION)
    path = tmp_path / "refoff.claims.toml"
    path.write_text("schema = 1\n" + claim_toml)
    with pytest.raises(ValueError, match="experiment 'ref_off' is not one of t2i_lens, knockout, refdrop, patching"):
        load_registry(path)


def test_an_unknown_question_in_a_user_claims_file_names_it_and_the_valid_ones(tmp_path):
    path = tmp_path / "mine.claims.toml"
    path.write_text('schema = 1\n[[claim]]\nid = "patching[single.9:text]-scene"\nfamily = "scene"\ntasks = ["add"]\n'
                    'experiment = { name = "patching", site = "single.9" }\nquestion = "patching.scene"\n'
                    'markers = ["scene", "patching"]\nhypothesis = "rate >= 0.5"\n')
    with pytest.raises(ValueError, match=r"unknown question 'patching.scene'; valid questions: ko_image.color, .*patching.color"):
        load_registry(path)


def test_a_patching_claim_must_draw_from_a_pair_family(tmp_path):
    path = tmp_path / "mine.claims.toml"
    path.write_text('schema = 1\n[[claim]]\nid = "patching[single.9:text]-color"\nfamily = "color"\ntasks = ["add"]\n'
                    'experiment = { name = "patching", site = "single.9" }\nquestion = "patching.color"\n'
                    'markers = ["color", "patching"]\nhypothesis = "rate >= 0.5"\n')
    with pytest.raises(ValueError, match="experiment 'patching' runs on pair families; 'add' is not one of color, style, human, glyph"):
        load_registry(path)


def test_old_experiment_and_question_spellings_load_as_the_tables_names(tmp_path):
    """A claims file written with ``i2i_patch`` / ``patch.color`` / ``ref_drop`` loads to the same claims
    as one written with the table's one spelling (``patching`` / ``patching.color`` / ``refdrop``); their ids are
    the lab's own (a claim file may not reuse a shipped one)."""
    def write(name, exp, question, cutoff_exp, cutoff_question):
        path = tmp_path / f"{name}.claims.toml"
        path.write_text('schema = 1\n[[claim]]\nid = "patching[single.9:text]-mine"\nfamily = "color"\n'
                        f'experiment = {{ name = "{exp}", site = "single.9" }}\nquestion = "{question}"\n'
                        'markers = ["color", "patching"]\nhypothesis = "rate >= 0.5"\n'
                        '[[claim]]\nid = "refdrop[single.9]-mine"\nfamily = "color"\n'
                        f'experiment = {{ name = "{cutoff_exp}", cutoff = "single.9" }}\nquestion = "{cutoff_question}"\n'
                        'markers = ["color", "refdrop"]\nhypothesis = "rate >= 0.5"\n')
        return {c.id: c for c in load_registry(path)}

    old = write("old", "i2i_patch", "patch.color", "ref_drop", "refdrop.color")
    new = write("new", "patching", "patching.color", "refdrop", "refdrop.color")
    assert old == new
    assert old["patching[single.9:text]-mine"].experiment.name == "patching"
    assert old["patching[single.9:text]-mine"].question == "patching.color"
    assert old["refdrop[single.9]-mine"].experiment.name == "refdrop"
    from mechinterp.judges.questions import QUESTIONS

    assert set(OLD_NAMES.values()) <= set(EXPERIMENTS) | {qid.split(".")[0] for qid in QUESTIONS}
