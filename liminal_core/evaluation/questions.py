"""The evaluation questions: our 50 one-word favourite-animal questions (or a user's file), optionally each
preceded by an example-numbers prefix from a fixed seed (the in-distribution variant)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from liminal_core.errors import InvalidData
from liminal_core.prompts.numbers import example_prefixes


def load_questions(path: str | None = None) -> list[str]:
    """The built-in questions, or those of a JSON file ``{"questions": [...]}`` (or a plain JSON list)."""
    if path is None:
        text = resources.files("liminal_core.data").joinpath("animal_questions.json").read_text(encoding="utf-8")
    else:
        file = Path(path)
        if not file.is_file():
            raise InvalidData(f"questions_file '{path}' does not exist")
        text = file.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidData(f"questions_file '{path}' is not valid JSON: {exc}") from exc
    questions = data.get("questions") if isinstance(data, dict) else data
    if not isinstance(questions, list) or not questions or not all(isinstance(q, str) and q for q in questions):
        raise InvalidData(f"questions_file '{path}': expected a non-empty list of strings under 'questions'")
    return questions


def evaluation_questions(n: int, *, numbers_prefix: bool, prefix_seed: int, path: str | None = None) -> list[str]:
    """The first ``n`` questions, each after its own numbers prefix when asked."""
    questions = load_questions(path)
    if n > len(questions):
        raise InvalidData(f"n_questions: asked for {n} but the question set has only {len(questions)}")
    chosen = questions[:n]
    if not numbers_prefix:
        return chosen
    prefixes = example_prefixes(n, prefix_seed)
    return [f"{prefix} {question}" for prefix, question in zip(prefixes, chosen, strict=True)]
