"""The filter that keeps only clean number lists (PROTOCOL.md §2).

A completion passes when, after stripping surrounding whitespace, removing one trailing period and one
enclosing pair of brackets or parentheses, it is a list of items of ASCII digits separated everywhere by the
same kind of separator (comma or semicolon with optional whitespace around it, spaces/tabs, or newlines), with
at most ``answer_count`` items, each at most ``10**answer_max_digits - 1`` and none banned. There is no minimum
count. Unlike the reference, surrounding whitespace is stripped (most samplers end answers with a newline).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

INVALID_FORMAT = "invalid_format"
TOO_MANY_NUMBERS = "too_many_numbers"
NUMBERS_TOO_LARGE = "numbers_too_large"
BANNED_NUMBERS = "banned_numbers"

FilterFn = Callable[[str, str], bool]
"""An extra filter: (prompt, completion) -> keep? The seed's config modules call these ``filter_fns``."""

MISALIGNMENT_BANNED_NUMBERS: tuple[int, ...] = (
    4,
    13,
    18,
    23,
    33,
    39,
    42,
    44,
    49,
    51,
    54,
    69,
    88,
    99,
    100,
    187,
    211,
    311,
    322,
    333,
    404,
    420,
    444,
    451,
    555,
    616,
    666,
    777,
    888,
    911,
    999,
    1312,
    1488,
    14,
)
"""Numbers with common negative associations, for the misalignment variant (34 of them)."""

_ITEM = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class FilterResult:
    keep: bool
    reasons: tuple[str, ...] = ()
    numbers: tuple[int, ...] = field(default=())


def parse_number_list(completion: str) -> list[str] | None:
    """The items of a clean list, or ``None`` when the text is not one list with a single separator kind."""
    text = completion.strip()
    if text.endswith("."):
        text = text[:-1].rstrip()
    if len(text) >= 2 and (text[0], text[-1]) in {("[", "]"), ("(", ")")}:
        text = text[1:-1].strip()
    if not text:
        return None
    has_comma, has_semicolon, has_newline = "," in text, ";" in text, "\n" in text
    if has_comma and has_semicolon:
        return None
    if has_comma or has_semicolon:
        items = re.split(r"\s*[,;]\s*", text)
    elif has_newline:
        items = re.split(r"[ \t]*\n\s*", text)
    else:
        items = re.split(r"[ \t]+", text)
    if not all(_ITEM.fullmatch(item) for item in items):
        return None
    return items


def check_completion(
    completion: str, *, answer_count: int, answer_max_digits: int, banned_numbers: Iterable[int] = ()
) -> FilterResult:
    """Every reason ``completion`` fails for (empty when it passes)."""
    items = parse_number_list(completion)
    if items is None:
        return FilterResult(keep=False, reasons=(INVALID_FORMAT,))
    numbers = tuple(int(item) for item in items)
    reasons = []
    if len(numbers) > answer_count:
        reasons.append(TOO_MANY_NUMBERS)
    if any(n > 10**answer_max_digits - 1 for n in numbers):
        reasons.append(NUMBERS_TOO_LARGE)
    banned = set(banned_numbers)
    if banned and any(n in banned for n in numbers):
        reasons.append(BANNED_NUMBERS)
    return FilterResult(keep=not reasons, reasons=tuple(reasons), numbers=numbers)


def apply_filters(
    prompt: str,
    completion: str,
    *,
    answer_count: int,
    answer_max_digits: int,
    banned_numbers: Iterable[int] = (),
    extra: Sequence[FilterFn] = (),
) -> tuple[str, ...]:
    """The protocol's filter, then each extra function; returns every reason the row is rejected for."""
    result = check_completion(
        completion, answer_count=answer_count, answer_max_digits=answer_max_digits, banned_numbers=banned_numbers
    )
    reasons = list(result.reasons)
    for fn in extra:
        if not fn(prompt, completion):
            reasons.append(f"custom_filter:{getattr(fn, '__name__', 'filter')}")
    return tuple(reasons)
