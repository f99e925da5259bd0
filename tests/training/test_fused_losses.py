"""The fused (chunked, selected-positions) loss equals the full-vocabulary reference, values and gradients."""

from __future__ import annotations

import pytest
import torch

from liminal_core.training.losses import IGNORE_INDEX, fused_loss, reference_loss


def _problem(seed: int, *, vocab: int = 97, hidden: int = 16, batch: int = 3, length: int = 11):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(batch, length, hidden, generator=g, dtype=torch.float64).float()
    hb = (h + 0.3 * torch.randn(batch, length, hidden, generator=g)).float()
    w = torch.randn(vocab, hidden, generator=g) * 0.5
    labels = torch.randint(0, vocab, (batch, length), generator=g)
    attention = torch.ones(batch, length, dtype=torch.long)
    # prompt tokens carry no label; right padding on the later rows
    labels[:, :4] = IGNORE_INDEX
    attention[1, -3:] = 0
    labels[1, -3:] = IGNORE_INDEX
    attention[2, -1:] = 0
    labels[2, -1:] = IGNORE_INDEX
    return h, hb, w, labels, attention


@pytest.mark.parametrize("kl_scope", ["completion", "all"])
@pytest.mark.parametrize("lam", [0.0, 0.7, 3.0])
@pytest.mark.parametrize("chunk_size", [1, 5, 1024])
def test_fused_equals_reference_values_and_gradients(kl_scope, lam, chunk_size):
    h, hb, w, labels, attention = _problem(0)
    temperature = 2.0

    h_ref = h.clone().requires_grad_(True)
    w_ref = w.clone().requires_grad_(True)
    ref = reference_loss(
        h_ref @ w_ref.t(), labels, attention, hb @ w.t(), lam=lam, temperature=temperature, kl_scope=kl_scope
    )
    ref.loss.backward()

    h_fused = h.clone().requires_grad_(True)
    w_fused = w.clone().requires_grad_(True)
    out = fused_loss(
        h_fused,
        w_fused,
        labels,
        attention,
        hb,
        lam=lam,
        temperature=temperature,
        kl_scope=kl_scope,
        chunk_size=chunk_size,
    )
    out.loss.backward()

    assert torch.allclose(out.loss, ref.loss, atol=1e-5, rtol=0)
    assert torch.allclose(out.ce, ref.ce, atol=1e-5, rtol=0)
    assert torch.allclose(out.kl, ref.kl, atol=1e-5, rtol=0)
    assert h_fused.grad is not None and h_ref.grad is not None
    assert torch.allclose(h_fused.grad, h_ref.grad, atol=1e-5, rtol=0)
    assert w_fused.grad is not None and w_ref.grad is not None
    assert torch.allclose(w_fused.grad, w_ref.grad, atol=1e-5, rtol=0)
    if lam > 0:
        assert out.kl > 0


def test_kl_and_its_gradient_are_zero_when_student_equals_base():
    h, _, w, labels, attention = _problem(1)
    h_with_kl = h.clone().requires_grad_(True)
    h_ce_only = h.clone().requires_grad_(True)
    out = fused_loss(h_with_kl, w, labels, attention, h.clone(), lam=1.0, temperature=2.0)
    ce_only = fused_loss(h_ce_only, w, labels, attention, None, lam=0.0, temperature=2.0)
    out.loss.backward()
    ce_only.loss.backward()
    assert out.kl.item() == 0.0
    assert torch.equal(out.loss.detach(), ce_only.loss.detach())
    assert h_with_kl.grad is not None and h_ce_only.grad is not None
    assert torch.equal(h_with_kl.grad, h_ce_only.grad)


def test_kl_scope_all_covers_prompt_positions():
    h, hb, w, labels, attention = _problem(2)
    completion = fused_loss(h, w, labels, attention, hb, lam=1.0, temperature=2.0, kl_scope="completion")
    everything = fused_loss(h, w, labels, attention, hb, lam=1.0, temperature=2.0, kl_scope="all")
    assert completion.ce == everything.ce
    assert completion.kl != everything.kl


def test_padding_positions_never_contribute():
    h, hb, w, labels, attention = _problem(3)
    out = fused_loss(h, w, labels, attention, hb, lam=1.0, temperature=2.0, kl_scope="all")
    h2, hb2 = h.clone(), hb.clone()
    h2[1, -3:] += 100.0  # padded positions of row 1
    hb2[1, -3:] -= 100.0
    out2 = fused_loss(h2, w, labels, attention, hb2, lam=1.0, temperature=2.0, kl_scope="all")
    assert torch.allclose(out.loss, out2.loss, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("kl_scope", ["completion", "all"])
def test_fused_forward_equals_plain_forward_on_the_real_model(smollm2_ref, kl_scope):
    """On SmolLM2 with a non-zero LoRA adapter: the fused path (hidden states, base from the disabled
    adapter) equals the plain full-logits path, loss and adapter gradients. Run in float64, so that the
    comparison is of the math, not of two fp32 summation orders over a 49k vocabulary (which alone differ
    by ~2e-5 on this model)."""
    from peft import LoraConfig, get_peft_model

    from liminal_core.loading import load_causal_lm
    from liminal_core.training.forward import compute_loss

    loaded = load_causal_lm(smollm2_ref, device="cpu", dtype=torch.float64, cached=False)
    torch.manual_seed(0)
    model = get_peft_model(
        loaded.model,
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False),
    )
    tok = loaded.tokenizer
    enc = tok(
        ["Here are some numbers: 1, 2, 3. Continue: 4, 5", "List: 10, 20, 30, 40"], return_tensors="pt", padding=True
    )
    labels = enc["input_ids"].clone()
    labels[:, :5] = IGNORE_INDEX
    labels[enc["attention_mask"] == 0] = IGNORE_INDEX
    batch = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels}

    results = []
    for fused in (False, True):
        model.zero_grad()
        out = compute_loss(model, batch, lam=0.8, temperature=2.0, kl_scope=kl_scope, fused=fused, with_base=True)
        out.loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None}
        results.append((out, grads))
    (plain, plain_grads), (fast, fast_grads) = results
    assert plain.kl > 0
    assert torch.allclose(fast.loss.double(), plain.loss.double(), atol=1e-5, rtol=0)
    assert torch.allclose(fast.kl.double(), plain.kl.double(), atol=1e-5, rtol=0)
    assert plain_grads.keys() == fast_grads.keys() and plain_grads
    for name, grad in plain_grads.items():
        assert torch.allclose(fast_grads[name], grad, atol=1e-8, rtol=1e-6), name
