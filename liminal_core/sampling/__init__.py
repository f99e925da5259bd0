"""Sampling backends behind one interface: chats + sample settings + seed → ordered completions."""

from liminal_core.sampling.base import Chat, Completion, Sampler, make_sampler

__all__ = ["Chat", "Completion", "Sampler", "make_sampler"]
