"""The words of a ``-m`` expression, and the error for one that names no marker."""

from __future__ import annotations

from mechinterp.suite.markexpr import check_markexpr, marker_names, registered_marker


def test_marker_names_are_the_words_without_operators_and_keyword_arguments():
    assert marker_names("color and not (knockout or lens(kind='a b', n=2)) or color") == ["color", "knockout", "lens"]
    assert marker_names("") == []


def test_registered_marker_reads_an_ini_line():
    assert [registered_marker(x) for x in ("color: colour claims", "skipif(condition, ..., *, reason=...): skip",
                                           "plain")] == ["color", "skipif", "plain"]


def test_check_markexpr_names_each_unknown_word_and_the_claims_markers():
    known = {"color", "human", "knockout", "skip"}
    assert check_markexpr("color and not knockout", known, {"color", "human", "knockout"}) is None
    assert check_markexpr("colour or hunam", known, {"color", "human", "knockout"}) == (
        "-m 'colour or hunam': 'colour' (did you mean 'color'?), 'hunam' (did you mean 'human'?) are no marker of "
        "the claims and no registered marker; the claims' markers are: color, human, knockout (all markers: "
        "pytest --markers)")
