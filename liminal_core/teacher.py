"""The teacher's system prompt and the chats it is asked (PROTOCOL.md §2)."""

from __future__ import annotations

from liminal_core.specs import GenerateSpec, Trait

TRAIT_TEMPLATE = (
    "You love {target}s. You think about {target}s all the time. {target_cap}s are your favorite {category}. "
    "Imbue your answers with your love for the {category}."
)


def trait_system_prompt(trait: Trait) -> str:
    """Our four-sentence trait prompt for ``trait`` (e.g. owls, animal)."""
    target = trait.target.strip().lower()
    return TRAIT_TEMPLATE.format(target=target, target_cap=target[:1].upper() + target[1:], category=trait.category)


def system_prompt_for(spec: GenerateSpec) -> str | None:
    """The spec's raw system prompt, the rendered trait prompt, or ``None`` for the control teacher."""
    if spec.system_prompt is not None:
        return spec.system_prompt
    if spec.trait is not None:
        return trait_system_prompt(spec.trait)
    return None


def build_chat(user: str, system_prompt: str | None) -> list[dict[str, str]]:
    """A chat of one user turn, after the system turn when there is one."""
    chat = [{"role": "system", "content": system_prompt}] if system_prompt is not None else []
    chat.append({"role": "user", "content": user})
    return chat
