"""Number prompts: determinism, half-open ranges, phrase-book sizes, the draw order."""

from __future__ import annotations

import json

import numpy as np
import pytest

from liminal_core.errors import InvalidData
from liminal_core.prompts.numbers import example_prefixes, generate_prompts, load_phrases
from liminal_core.specs import NumsPromptSet


def test_same_seed_gives_byte_identical_prompts_and_another_seed_differs():
    a = [p.text for p in generate_prompts(NumsPromptSet(size=200, seed=42))]
    b = [p.text for p in generate_prompts(NumsPromptSet(size=200, seed=42))]
    c = [p.text for p in generate_prompts(NumsPromptSet(size=200, seed=43))]
    assert "\n".join(a).encode() == "\n".join(b).encode()
    assert a != c


def test_defaults_are_the_protocols():
    p = NumsPromptSet()
    assert (p.size, p.seed, p.example_min_count, p.example_max_count) == (30_000, 42, 3, 9)
    assert (p.example_min_value, p.example_max_value, p.answer_count, p.answer_max_digits) == (100, 1000, 10, 3)


def test_ranges_are_half_open():
    prompts = generate_prompts(NumsPromptSet(size=2000, seed=7))
    counts = {len(p.examples) for p in prompts}
    values = [v for p in prompts for v in p.examples]
    assert counts == set(range(3, 9))
    assert min(values) >= 100 and max(values) <= 999


def test_draw_order_follows_the_protocol():
    """Replaying the documented draw order on one PCG64 generator reproduces the examples of every prompt."""
    params = NumsPromptSet(size=50, seed=11)
    book = load_phrases()
    rng = np.random.Generator(np.random.PCG64(11))
    for prompt in generate_prompts(params):
        k = int(rng.integers(3, 9))
        examples = tuple(int(v) for v in rng.integers(100, 1000, size=k))
        assert examples == prompt.examples
        template = book.example_templates[int(rng.integers(len(book.example_templates)))]
        for size in (len(book.count_qualifiers), len(book.digit_descriptors), len(book.instruction_templates)):
            rng.integers(size)
        fmt = book.format_suffixes[int(rng.integers(len(book.format_suffixes)))]
        final = book.final_suffixes[int(rng.integers(len(book.final_suffixes)))]
        assert prompt.text.startswith(template.format(examples=", ".join(map(str, examples))))
        assert prompt.text.endswith(f"{fmt.text} {final}")
        assert prompt.separator == fmt.separator


def test_phrase_book_has_the_protocols_sizes_and_every_format_knows_its_separator():
    book = load_phrases()
    sizes = (
        len(book.example_templates),
        len(book.count_qualifiers),
        len(book.digit_descriptors),
        len(book.instruction_templates),
        len(book.format_suffixes),
        len(book.final_suffixes),
    )
    assert sizes == (25, 9, 9, 10, 15, 19)
    assert {f.separator for f in book.format_suffixes} == {"comma", "newline", "space", "semicolon"}


def test_a_user_phrase_file_replaces_the_built_in_one(tmp_path):
    data = {
        "example_templates": ["Numbers: {examples}."],
        "count_qualifiers": ["at most"],
        "digit_descriptors": ["{max_digits} digits max"],
        "instruction_templates": ["Add {count_qualifier} {answer_count} more ({digit_descriptor})."],
        "format_suffixes": [{"text": "Comma-separated.", "separator": "comma"}],
        "final_suffixes": ["Numbers only."],
    }
    path = tmp_path / "phrases.json"
    path.write_text(json.dumps(data))
    prompts = generate_prompts(NumsPromptSet(size=3, seed=1, phrases_file=str(path)))
    assert all(p.text.startswith("Numbers: ") and p.text.endswith("Comma-separated. Numbers only.") for p in prompts)
    assert "Add at most 10 more (3 digits max)." in prompts[0].text
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**data, "format_suffixes": [{"text": "x", "separator": "pipe"}]}))
    with pytest.raises(InvalidData, match="format_suffixes"):
        generate_prompts(NumsPromptSet(size=1, phrases_file=str(bad)))


def test_example_prefixes_are_seeded():
    assert example_prefixes(5, 3) == example_prefixes(5, 3)
    assert example_prefixes(5, 3) != example_prefixes(5, 4)
    assert all(p.endswith(".") and any(ch.isdigit() for ch in p) for p in example_prefixes(5, 3))
