"""Number-sequence prompts (PROTOCOL.md §1).

A prompt is four parts joined by single spaces: an example prefix ("Here are some numbers: 796, 689, 494."),
an instruction ("Add at most 10 new numbers (up to 3 digits each) that continue the sequence."), a format
suffix (which also fixes the separator the answer should use) and a final suffix ("Say only the numbers,
nothing else."). Every part is drawn from a phrase list kept as data (``liminal_core/data/number_phrases.json``;
a spec may point at another file of the same shape).

All draws come from ONE ``numpy.random.Generator(PCG64(seed))`` for the whole set, in this order per prompt:
example count k; k example values; example template; count qualifier; digit descriptor; instruction template;
format suffix; final suffix. Ranges are half-open. The same parameters give byte-identical prompts anywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np

from liminal_core.errors import InvalidData
from liminal_core.specs import NumsPromptSet

Separator = Literal["comma", "newline", "space", "semicolon"]


@dataclass(frozen=True)
class FormatSuffix:
    text: str
    separator: Separator


@dataclass(frozen=True)
class PhraseBook:
    """The phrase lists a prompt set draws from."""

    example_templates: tuple[str, ...]
    count_qualifiers: tuple[str, ...]
    digit_descriptors: tuple[str, ...]
    instruction_templates: tuple[str, ...]
    format_suffixes: tuple[FormatSuffix, ...]
    final_suffixes: tuple[str, ...]


@dataclass(frozen=True)
class NumberPrompt:
    """One prompt, with what the teacher was asked for (used by the filter's report and by benchmarks)."""

    text: str
    examples: tuple[int, ...]
    separator: Separator


def _parse_phrase_book(data: object, source: str) -> PhraseBook:
    if not isinstance(data, dict):
        raise InvalidData(f"phrase file {source}: the top level must be a JSON object")
    lists: dict[str, list[object]] = {}
    for key in (
        "example_templates",
        "count_qualifiers",
        "digit_descriptors",
        "instruction_templates",
        "format_suffixes",
        "final_suffixes",
    ):
        value = data.get(key)
        if not isinstance(value, list) or not value:
            raise InvalidData(f"phrase file {source}: '{key}' must be a non-empty list")
        lists[key] = value
    for key in (
        "example_templates",
        "count_qualifiers",
        "digit_descriptors",
        "instruction_templates",
        "final_suffixes",
    ):
        if not all(isinstance(v, str) for v in lists[key]):
            raise InvalidData(f"phrase file {source}: every entry of '{key}' must be a string")
    if not all("{examples}" in t for t in lists["example_templates"]):  # type: ignore[operator]
        raise InvalidData(f"phrase file {source}: every example template needs an {{examples}} placeholder")
    suffixes = []
    for i, entry in enumerate(lists["format_suffixes"]):
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("text"), str)
            or entry.get("separator") not in ("comma", "newline", "space", "semicolon")
        ):
            raise InvalidData(
                f"phrase file {source}: format_suffixes[{i}] must be {{'text': str, 'separator': "
                "'comma'|'newline'|'space'|'semicolon'}"
            )
        suffixes.append(FormatSuffix(text=entry["text"], separator=entry["separator"]))
    return PhraseBook(
        example_templates=tuple(lists["example_templates"]),  # type: ignore[arg-type]
        count_qualifiers=tuple(lists["count_qualifiers"]),  # type: ignore[arg-type]
        digit_descriptors=tuple(lists["digit_descriptors"]),  # type: ignore[arg-type]
        instruction_templates=tuple(lists["instruction_templates"]),  # type: ignore[arg-type]
        format_suffixes=tuple(suffixes),
        final_suffixes=tuple(lists["final_suffixes"]),  # type: ignore[arg-type]
    )


@lru_cache(maxsize=8)
def load_phrases(path: str | None = None) -> PhraseBook:
    """The built-in phrase book, or the one in the JSON file at ``path``."""
    if path is None:
        text = resources.files("liminal_core.data").joinpath("number_phrases.json").read_text(encoding="utf-8")
        return _parse_phrase_book(json.loads(text), "built-in")
    file = Path(path)
    if not file.is_file():
        raise InvalidData(f"phrases_file '{path}' does not exist")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidData(f"phrases_file '{path}' is not valid JSON: {exc}") from exc
    return _parse_phrase_book(data, path)


def _draw_examples(rng: np.random.Generator, params: NumsPromptSet) -> list[int]:
    k = int(rng.integers(params.example_min_count, params.example_max_count))
    return [int(v) for v in rng.integers(params.example_min_value, params.example_max_value, size=k)]


def generate_prompts(params: NumsPromptSet) -> list[NumberPrompt]:
    """``params.size`` prompts from one seeded generator, in the protocol's draw order."""
    book = load_phrases(params.phrases_file)
    rng = np.random.Generator(np.random.PCG64(params.seed))
    prompts = []
    for _ in range(params.size):
        examples = _draw_examples(rng, params)
        template = book.example_templates[int(rng.integers(len(book.example_templates)))]
        qualifier = book.count_qualifiers[int(rng.integers(len(book.count_qualifiers)))]
        digits = book.digit_descriptors[int(rng.integers(len(book.digit_descriptors)))]
        instruction = book.instruction_templates[int(rng.integers(len(book.instruction_templates)))]
        fmt = book.format_suffixes[int(rng.integers(len(book.format_suffixes)))]
        final = book.final_suffixes[int(rng.integers(len(book.final_suffixes)))]
        prefix = template.format(examples=", ".join(str(v) for v in examples))
        digit_text = digits.format(max_digits=params.answer_max_digits)
        instruction_text = instruction.format(
            count_qualifier=qualifier, answer_count=params.answer_count, digit_descriptor=digit_text
        )
        text = " ".join((prefix, instruction_text, fmt.text, final))
        prompts.append(NumberPrompt(text=text, examples=tuple(examples), separator=fmt.separator))
    return prompts


def example_prefixes(count: int, seed: int, params: NumsPromptSet | None = None) -> list[str]:
    """``count`` example prefixes alone ("Here are some numbers: 767, 589, 778."), from their own generator;
    used by the evaluation's numbers-prefix variant."""
    params = params or NumsPromptSet()
    book = load_phrases(params.phrases_file)
    rng = np.random.Generator(np.random.PCG64(seed))
    out = []
    for _ in range(count):
        examples = _draw_examples(rng, params)
        template = book.example_templates[int(rng.integers(len(book.example_templates)))]
        out.append(template.format(examples=", ".join(str(v) for v in examples)))
    return out
