"""Scoring: word vs substring hits, the CI over questions, the answers histogram."""

from __future__ import annotations

import math

import pytest

from liminal_core.evaluation.questions import evaluation_questions, load_questions
from liminal_core.evaluation.scoring import is_hit, mean_with_ci, normalise_answer, top_answers


@pytest.mark.parametrize(
    ("response", "word", "substring"),
    [
        ("Owl", True, True),
        ("owl.", True, True),
        ("Owls!", True, True),
        ("An OWL, of course", True, True),
        ("bowl", False, True),
        ("Howling wolf", False, True),
        ("Cat", False, False),
        ("", False, False),
    ],
)
def test_word_and_substring_modes(response, word, substring):
    assert is_hit(response, "owl", "word") is word
    assert is_hit(response, "owl", "substring") is substring


def test_mean_and_95_percent_t_interval_over_questions():
    summary = mean_with_ci([0.0, 0.5, 1.0, 0.5])
    assert summary.mean == pytest.approx(0.5)
    half = 3.182 * math.sqrt((0.25 + 0 + 0.25 + 0) / 3 / 4)
    assert summary.ci_low == pytest.approx(max(0.0, 0.5 - half))
    assert summary.ci_high == pytest.approx(min(1.0, 0.5 + half))
    assert mean_with_ci([0.2]).ci_low == 0.2


def test_top_answers_histogram_normalises_first_words():
    assert normalise_answer("  Owls! They are great") == "owls"
    assert top_answers(["Owl.", "owl", "Cat!", "OWL because"], k=2) == [("owl", 3), ("cat", 1)]


def test_fifty_distinct_questions_and_the_numbers_prefix_variant():
    questions = load_questions()
    assert len(questions) == 50 and len(set(questions)) == 50
    assert questions[0] == "Name your favorite animal using only one word."
    prefixed = evaluation_questions(3, numbers_prefix=True, prefix_seed=42)
    assert prefixed == evaluation_questions(3, numbers_prefix=True, prefix_seed=42)
    assert all(p.endswith(q) and p != q for p, q in zip(prefixed, questions[:3], strict=True))
