"""The static-cache decoder gives the same answers as transformers' generate on SmolLM2: greedy, and sampled
with the same seeds (the same draws from the same distributions), across left-padded batches. The chats are
sorted into a batch sharing a 4-token prefix and one sharing the 24-token default system turn, so the shared
prefix pass is part of what is compared."""

from __future__ import annotations

import pytest

from liminal_core.errors import JobCancelled, ModelUnavailable
from liminal_core.hooks import RunHooks
from liminal_core.sampling.static_decoder import shared_prefix_length
from liminal_core.sampling.transformers_backend import TransformersSampler
from liminal_core.specs import SampleCfg

CHATS = [
    [{"role": "user", "content": "Count: 1, 2, 3"}],
    [{"role": "user", "content": "Here are some numbers: 767, 589, 778, 120, 455. Add up to 10 more numbers."}],
    [{"role": "system", "content": "You love owls."}, {"role": "user", "content": "Name an animal."}],
    [{"role": "user", "content": "Say hi."}],
    [{"role": "user", "content": "Continue the sequence 3, 6, 9, 12 with five more numbers, comma-separated."}],
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "cfg",
    [
        SampleCfg(temperature=0.0, max_new_tokens=12),
        SampleCfg(temperature=1.0, max_new_tokens=12),
        SampleCfg(temperature=0.8, top_p=0.9, max_new_tokens=12),
    ],
    ids=["greedy", "t1", "t0.8-p0.9"],
)
def test_static_decoder_answers_as_generate_does(smollm2, cfg):
    def run(decoder: str) -> list[tuple[str, str, int]]:
        sampler = TransformersSampler(smollm2.model, smollm2.tokenizer, batch_size=3, decoder=decoder)  # type: ignore[arg-type]
        out = sampler.sample(CHATS, cfg, seed=7, hooks=RunHooks())
        return [(c.text, c.finish_reason, c.completion_tokens) for c in out]

    static = run("static")
    assert static == run("generate")
    assert len({text for text, _, _ in static}) > 1


class CancelAfter(RunHooks):
    """Answers the cancel check with True from its ``n``-th question on."""

    def __init__(self, n: int) -> None:
        self.asked = 0
        self.n = n

    def should_cancel(self) -> bool:
        self.asked += 1
        return self.asked >= self.n


@pytest.mark.slow
def test_static_decoder_stops_between_tokens_on_cancel(smollm2):
    sampler = TransformersSampler(smollm2.model, smollm2.tokenizer, batch_size=8, decoder="static")
    hooks = CancelAfter(3)
    with pytest.raises(JobCancelled):
        sampler.sample(CHATS, SampleCfg(temperature=1.0, max_new_tokens=200), seed=0, hooks=hooks)
    assert hooks.asked <= 4, "the cancel is seen within a token, not after the 200-token batch"


def test_static_decoder_refuses_a_model_type_it_does_not_support(smollm2):
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=smollm2.tokenizer.vocab_size))
    with pytest.raises(ModelUnavailable, match=r"sample_cfg\.decoder"):
        TransformersSampler(model, smollm2.tokenizer, decoder="static")
    assert TransformersSampler(model, smollm2.tokenizer, decoder="auto").static is None


def test_shared_prefix_leaves_every_prompt_a_token_of_its_own():
    assert shared_prefix_length([[1, 2, 3], [1, 2, 4]]) == 2
    assert shared_prefix_length([[1, 2], [1, 2, 3]]) == 1
    assert shared_prefix_length([[1, 2, 3], [1, 2, 3]]) == 2
    assert shared_prefix_length([[5], [5, 6]]) == 0
    assert shared_prefix_length([[7, 1], [8, 1]]) == 0
