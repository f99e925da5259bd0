"""Rows → chat tokens with completion-only labels, truncation, row selection, batch order and collation."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from liminal_core.errors import InvalidData
from liminal_core.training.data import BatchPlan, Example, collate, tokenize_rows
from liminal_core.training.engine import load_training_rows
from liminal_core.training.losses import IGNORE_INDEX

from .tiny_data import number_rows, small_spec, write_rows


@pytest.mark.slow
def test_labels_cover_exactly_the_completion(smollm2):
    tok = smollm2.tokenizer
    rows = [{"prompt": "Continue: 1, 2, 3.", "completion": "4, 5, 6"}]
    data = tokenize_rows(rows, tok, 512)
    (ex,) = data.examples
    user = [{"role": "user", "content": rows[0]["prompt"]}]
    prompt_len = len(tok.apply_chat_template(user, add_generation_prompt=True, return_dict=True)["input_ids"])
    assert ex.labels[:prompt_len] == [IGNORE_INDEX] * prompt_len
    assert ex.labels[prompt_len:] == ex.input_ids[prompt_len:]
    labelled = tok.decode(ex.labels[prompt_len:])
    assert labelled.startswith("4, 5, 6")  # the completion, then the template's end of turn
    assert "Continue" not in labelled
    assert tok.decode(ex.input_ids[:prompt_len]).rstrip().endswith("assistant")
    assert (data.truncated, data.dropped) == (0, 0)


@pytest.mark.slow
def test_truncation_is_counted_and_empty_rows_dropped(smollm2):
    tok = smollm2.tokenizer
    long = {"prompt": "Continue: 1.", "completion": ", ".join(str(i) for i in range(200, 260))}
    short = {"prompt": "Continue: 1.", "completion": "2"}
    full = len(tokenize_rows([short], tok, 4096).examples[0].input_ids)
    data = tokenize_rows([long, short], tok, full + 3)
    assert data.truncated == 1 and data.dropped == 0
    assert len(data.examples[0].input_ids) == full + 3
    # a limit inside the prompt leaves no completion token: the row is dropped (and counted)
    data = tokenize_rows([long], tok, 10)
    assert (data.truncated, data.dropped, data.examples) == (1, 1, [])


def test_plan_is_seeded_and_covers_every_row_each_epoch():
    lengths = [5, 9, 3, 7, 11, 2, 8]
    plan = BatchPlan(lengths, 3, seed=7, group_by_length=False)
    assert plan.per_epoch == 3
    for epoch in range(3):
        batches = [plan.micro_batch(epoch * 3 + k) for k in range(3)]
        assert sorted(i for b in batches for i in b) == list(range(7))
        assert [len(b) for b in batches] == [3, 3, 1]
    assert plan.epoch_batches(0) != plan.epoch_batches(1)
    again = BatchPlan(lengths, 3, seed=7, group_by_length=False)
    assert [again.micro_batch(k) for k in range(9)] == [plan.micro_batch(k) for k in range(9)]
    other = BatchPlan(lengths, 3, seed=8, group_by_length=False)
    assert [other.micro_batch(k) for k in range(9)] != [plan.micro_batch(k) for k in range(9)]


def test_length_grouped_batches_do_not_overlap_in_length():
    lengths = [17, 3, 25, 8, 12, 30, 1, 19, 6, 22]
    plan = BatchPlan(lengths, 2, seed=0, group_by_length=True)
    batches = plan.epoch_batches(0)
    assert sorted(i for b in batches for i in b) == list(range(10))
    spans = sorted((min(lengths[i] for i in b), max(lengths[i] for i in b)) for b in batches)
    assert all(hi <= next_lo for (_, hi), (next_lo, _) in itertools.pairwise(spans))


def test_collate_pads_on_the_right():
    batch = collate([Example([5, 6, 7], [IGNORE_INDEX, 6, 7]), Example([8], [IGNORE_INDEX])], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 6, 7], [IGNORE_INDEX] * 3]


def _two_sets(tmp_path: Path) -> tuple[Path, Path]:
    return (
        write_rows(tmp_path / "with_trait.jsonl", number_rows(6, seed=1)),
        write_rows(tmp_path / "without_trait.jsonl", number_rows(4, seed=2)),
    )


def test_normal_mixes_both_sets_and_subsamples_with_the_seed(tmp_path: Path):
    with_trait, without_trait = _two_sets(tmp_path)
    both = load_training_rows(small_spec(with_trait, train_data_without_trait=str(without_trait)), None)
    assert both == number_rows(6, seed=1) + number_rows(4, seed=2)
    sub = load_training_rows(
        small_spec(with_trait, train_data_without_trait=str(without_trait), max_dataset_size=5), None
    )
    assert len(sub) == 5 and all(r in both for r in sub)
    assert sub == load_training_rows(
        small_spec(with_trait, train_data_without_trait=str(without_trait), max_dataset_size=5), None
    )
    other = load_training_rows(
        small_spec(with_trait, train_data_without_trait=str(without_trait), max_dataset_size=5, seed=3), None
    )
    assert other != sub


def test_data_paths_replace_the_spec_fields(tmp_path: Path):
    with_trait, without_trait = _two_sets(tmp_path)
    spec = small_spec(Path("file-id-123"), method="liminal")
    assert load_training_rows(spec, (with_trait, None)) == number_rows(6, seed=1)
    with pytest.raises(InvalidData, match="liminal learning uses trait data only"):
        load_training_rows(spec, (with_trait, without_trait))
