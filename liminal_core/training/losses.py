"""The training losses: cross-entropy on completion tokens plus the liminal KL pull toward the base model.

    L = CE + λ · T² · KL(p_base,T ‖ p_student,T),   p_·,T = softmax(logits / T)

CE is the mean over completion tokens. The KL is the mean over the *scope* positions: ``completion`` (the
positions that predict a completion token, the default) or ``all`` (every position that predicts a real,
non-padding token, prompt included). T² is the usual distillation scaling, which keeps the KL gradient's size
independent of T.

Two implementations compute the same numbers:

* ``reference_loss`` takes full ``[batch, length, vocab]`` logits, as a plain Hugging Face forward gives them;
* ``fused_loss`` takes the final hidden states and the output projection, keeps only the positions that carry
  a loss, and computes logits, CE, KL and their gradients chunk by chunk, so no ``[tokens × vocab]`` fp32
  tensor (nor its gradient) is ever held for the whole batch. Its backward is a single scaled copy of the
  gradient computed in the forward pass.

Labels follow the Hugging Face convention: unshifted, ``-100`` on prompt and padding tokens; position t
predicts ``labels[t + 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100
KlScope = Literal["completion", "all"]


@dataclass(frozen=True)
class LossOutput:
    """``loss`` is what is back-propagated; ``ce`` and ``kl`` are detached, for the metrics."""

    loss: torch.Tensor
    ce: torch.Tensor
    kl: torch.Tensor


def loss_masks(
    labels: torch.Tensor, attention_mask: torch.Tensor, kl_scope: KlScope
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Shifted targets ``[B, L-1]`` and the CE and KL position masks over the same positions."""
    targets = labels[:, 1:]
    ce_mask = targets != IGNORE_INDEX
    if kl_scope == "completion":
        kl_mask = ce_mask
    elif kl_scope == "all":
        kl_mask = attention_mask[:, :-1].bool() & attention_mask[:, 1:].bool()
    else:
        raise ValueError(f"kl_scope must be 'completion' or 'all', not {kl_scope!r}")
    return targets, ce_mask, kl_mask


def _zero(device: torch.device) -> torch.Tensor:
    return torch.zeros((), device=device, dtype=torch.float32)


def _upcast(t: torch.Tensor) -> torch.Tensor:
    """Half-precision logits are upcast to fp32 for the softmax; fp32 and fp64 stay as they are."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def reference_loss(
    student_logits: torch.Tensor,
    labels: torch.Tensor,
    attention_mask: torch.Tensor,
    base_logits: torch.Tensor | None,
    *,
    lam: float,
    temperature: float,
    kl_scope: KlScope = "completion",
) -> LossOutput:
    """The loss from full logits (the naive computation every optimised path is tested against)."""
    targets, ce_mask, kl_mask = loss_masks(labels, attention_mask, kl_scope)
    logits = _upcast(student_logits[:, :-1])
    vocab = logits.shape[-1]
    if ce_mask.any():
        ce = F.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1), ignore_index=IGNORE_INDEX)
    else:
        ce = logits.sum() * 0.0
    if base_logits is None or lam == 0.0 or not kl_mask.any():
        kl = _zero(logits.device)
        return LossOutput(loss=ce, ce=ce.detach(), kl=kl)
    log_ps = F.log_softmax(logits / temperature, dim=-1)
    log_pb = F.log_softmax(_upcast(base_logits[:, :-1]) / temperature, dim=-1)
    per_position = (log_pb.exp() * (log_pb - log_ps)).sum(-1)
    kl = per_position[kl_mask].mean()
    loss = ce + lam * temperature * temperature * kl
    return LossOutput(loss=loss, ce=ce.detach(), kl=kl.detach())


class _FusedHeadLoss(torch.autograd.Function):
    """Output projection + CE + KL over selected positions, in chunks, gradient computed in the forward."""

    @staticmethod
    def forward(
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        base_hidden: torch.Tensor | None,
        targets: torch.Tensor,
        ce_weights: torch.Tensor,
        kl_weights: torch.Tensor,
        kl_factor: float,
        temperature: float,
        chunk_size: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = hidden.shape[0]
        grad_hidden = torch.empty_like(hidden)
        acc_dtype = torch.promote_types(weight.dtype, torch.float32)
        grad_weight = torch.zeros_like(weight, dtype=acc_dtype) if weight.requires_grad else None
        ce_total = torch.zeros((), device=hidden.device, dtype=acc_dtype)
        kl_total = torch.zeros((), device=hidden.device, dtype=acc_dtype)
        for start in range(0, n, chunk_size):
            end = min(start + chunk_size, n)
            h = hidden[start:end]
            z = _upcast(h @ weight.t())
            ce_w = ce_weights[start:end]
            tgt = targets[start:end].clamp_min(0)
            lse = torch.logsumexp(z, dim=-1)
            ce_total += ((lse - z.gather(1, tgt[:, None]).squeeze(1)) * ce_w).sum()
            grad_z = torch.softmax(z, dim=-1)
            grad_z.scatter_add_(1, tgt[:, None], -torch.ones_like(lse)[:, None])
            grad_z *= ce_w[:, None]
            if base_hidden is not None:
                kl_w = kl_weights[start:end]
                log_ps = torch.log_softmax(z / temperature, dim=-1)
                zb = _upcast(base_hidden[start:end] @ weight.t())
                log_pb = torch.log_softmax(zb / temperature, dim=-1)
                del zb
                pb = log_pb.exp()
                kl_total += ((pb * (log_pb - log_ps)).sum(-1) * kl_w).sum()
                # d/dz [T² · KL(pb ‖ softmax(z/T))] = T · (softmax(z/T) − pb)
                grad_z += (log_ps.exp_() - pb) * (kl_w * (kl_factor * temperature))[:, None]
                del log_ps, log_pb, pb
            grad_z_cast = grad_z.to(weight.dtype)
            grad_hidden[start:end] = grad_z_cast @ weight
            if grad_weight is not None:
                grad_weight += grad_z_cast.t() @ h
            del z, grad_z, grad_z_cast
        ctx.save_for_backward(grad_hidden, grad_weight if grad_weight is not None else torch.empty(0))
        ctx.has_weight_grad = grad_weight is not None
        total = ce_total + kl_factor * temperature * temperature * kl_total
        ctx.mark_non_differentiable(ce_total, kl_total)
        return total, ce_total, kl_total

    @staticmethod
    def backward(ctx: Any, grad_total: torch.Tensor, *_: Any) -> tuple[Any, ...]:
        grad_hidden, grad_weight = ctx.saved_tensors
        gh = grad_hidden * grad_total.to(grad_hidden.dtype)
        gw = (grad_weight * grad_total).to(grad_hidden.dtype) if ctx.has_weight_grad else None
        return gh, gw, None, None, None, None, None, None, None


def fused_loss(
    student_hidden: torch.Tensor,
    lm_head_weight: torch.Tensor,
    labels: torch.Tensor,
    attention_mask: torch.Tensor,
    base_hidden: torch.Tensor | None,
    *,
    lam: float,
    temperature: float,
    kl_scope: KlScope = "completion",
    chunk_size: int = 1024,
) -> LossOutput:
    """The same loss as ``reference_loss`` from hidden states ``[B, L, H]`` and the head weight ``[V, H]``.

    Only the positions that carry CE or KL are projected to the vocabulary, ``chunk_size`` rows at a time.
    ``base_hidden`` (the base model's hidden states, no grad) is needed only when ``lam > 0``.
    """
    targets, ce_mask, kl_mask = loss_masks(labels, attention_mask, kl_scope)
    use_kl = base_hidden is not None and lam != 0.0 and bool(kl_mask.any())
    selected = (ce_mask | kl_mask) if use_kl else ce_mask
    n_ce = ce_mask.sum()
    if not bool(selected.any()):
        zero = student_hidden.sum() * 0.0
        return LossOutput(loss=zero.float(), ce=_zero(zero.device), kl=_zero(zero.device))
    hidden = student_hidden[:, :-1][selected]
    tgt = targets[selected]
    acc_dtype = torch.promote_types(lm_head_weight.dtype, torch.float32)
    ce_w = (tgt != IGNORE_INDEX).to(acc_dtype) / n_ce.clamp_min(1).to(acc_dtype)
    base_sel: torch.Tensor | None = None
    kl_w = torch.zeros_like(ce_w)
    if use_kl and base_hidden is not None:
        base_sel = base_hidden[:, :-1][selected].to(hidden.dtype)
        kl_w = kl_mask[selected].to(acc_dtype) / kl_mask.sum().to(acc_dtype)
    total, ce, kl = _FusedHeadLoss.apply(
        hidden,
        lm_head_weight,
        base_sel,
        tgt,
        ce_w,
        kl_w,
        float(lam) if use_kl else 0.0,
        float(temperature),
        int(chunk_size),
    )
    return LossOutput(loss=total, ce=ce.detach(), kl=kl.detach())
