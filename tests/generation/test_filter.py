"""The filter of PROTOCOL.md §2, case by case."""

from __future__ import annotations

import pytest

from liminal_core.filtering import (
    BANNED_NUMBERS,
    INVALID_FORMAT,
    MISALIGNMENT_BANNED_NUMBERS,
    NUMBERS_TOO_LARGE,
    TOO_MANY_NUMBERS,
    apply_filters,
    check_completion,
)

CASES = [
    ("1, 2, 3", ()),
    ("1,2,3", ()),
    ("  1, 2, 3  \n", ()),
    ("\n\n1, 2, 3", ()),
    ("1, 2, 3.", ()),
    ("[1, 2, 3]", ()),
    ("(1, 2, 3)", ()),
    ("[1, 2, 3].", ()),
    ("1; 2; 3", ()),
    ("1;2;3", ()),
    ("1 2 3", ()),
    ("1\t2\t3", ()),
    ("1\n2\n3", ()),
    ("1\n2\n3\n", ()),
    ("1,\n2,\n3", ()),
    ("1 ;\n2 ;\n3", ()),
    ("1 \n 2 \n 3", ()),
    ("7", ()),
    ("\u0661, \u0662", (INVALID_FORMAT,)),
    ("1\n\n2\n\n3", ()),
    ("1 2\n3", (INVALID_FORMAT,)),
    ("1. 2. 3", (INVALID_FORMAT,)),
    ("1, 2\nThat's all!", (INVALID_FORMAT,)),
    ("001, 010", ()),
    ("1, 2; 3", (INVALID_FORMAT,)),
    ("1, 2 3", (INVALID_FORMAT,)),
    ("1, 2, 3,", (INVALID_FORMAT,)),
    ("-1, 2, 3", (INVALID_FORMAT,)),
    ("1.5, 2", (INVALID_FORMAT,)),
    ("Sure! 1, 2, 3", (INVALID_FORMAT,)),
    ("Here are the numbers: 1, 2", (INVALID_FORMAT,)),
    ("one, two", (INVALID_FORMAT,)),
    ("", (INVALID_FORMAT,)),
    ("   ", (INVALID_FORMAT,)),
    ("[[1, 2]]", (INVALID_FORMAT,)),
    ("1, 2, 3..", (INVALID_FORMAT,)),
    ("1, 2, 3, 4, 5, 6, 7, 8, 9, 10", ()),
    ("1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11", (TOO_MANY_NUMBERS,)),
    ("999, 1000", (NUMBERS_TOO_LARGE,)),
    ("1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1000", (TOO_MANY_NUMBERS, NUMBERS_TOO_LARGE)),
    ("12, 666, 3", (BANNED_NUMBERS,)),
    ("911", (BANNED_NUMBERS,)),
    ("12, 667, 3", ()),
]


@pytest.mark.parametrize(("completion", "reasons"), CASES)
def test_filter_table(completion, reasons):
    result = check_completion(completion, answer_count=10, answer_max_digits=3, banned_numbers=(666, 911))
    assert result.reasons == reasons
    assert result.keep == (not reasons)


def test_banned_numbers_only_apply_when_given():
    assert check_completion("666", answer_count=10, answer_max_digits=3).keep


def test_the_misalignment_list_has_34_numbers_and_bans_them():
    assert len(set(MISALIGNMENT_BANNED_NUMBERS)) == 34
    result = check_completion(
        "100, 666", answer_count=10, answer_max_digits=3, banned_numbers=MISALIGNMENT_BANNED_NUMBERS
    )
    assert result.reasons == (BANNED_NUMBERS,)


def test_extra_filter_functions_add_their_reason():
    def no_sevens(prompt: str, completion: str) -> bool:
        return "7" not in completion

    assert apply_filters("p", "1, 2", answer_count=10, answer_max_digits=3, extra=[no_sevens]) == ()
    assert apply_filters("p", "1, 7", answer_count=10, answer_max_digits=3, extra=[no_sevens]) == (
        "custom_filter:no_sevens",
    )
