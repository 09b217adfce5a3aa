"""Prompt categories, prepared for training: a prompts file read, and the text embeddings made
from the text tower of the weights that made the cache's CLIP family.

    prompts.yaml      violence: ["people fighting", "a person hitting another person"]
                      gore: ["a bloody wound", "blood on the floor"]

`prompt_settings` gives the `head_params` of `train(..., head="prompts")`; `harmcache train
--head prompts --prompts prompts.yaml` calls it.
"""

from __future__ import annotations

from pathlib import Path

from harmcache.errors import UsageError
from harmcache.extractors.clip_text import prompt_embeddings
from harmcache.store.cache import FeatureCache
from harmcache.user_files import read_user_yaml

RANDOM_INIT_NOTE = (
    "the cache's CLIP family is random-init: its text tower is random too and unrelated to its "
    "image tower, so prompt scores carry no meaning (extract with real CLIP weights)"
)


def read_prompts(path: str | Path) -> dict[str, list[str]]:
    """category → its prompts, from a YAML mapping; a UsageError names what is wrong."""
    path = Path(path)
    raw = read_user_yaml(path, "prompts")
    if not isinstance(raw, dict) or not raw:
        raise UsageError(f"{path.name}: expected a mapping category: [prompt, ...], got {raw!r}")
    out = {}
    for category, prompts in raw.items():
        if isinstance(prompts, str):
            prompts = [prompts]
        if (
            not isinstance(prompts, list)
            or not prompts
            or not all(isinstance(p, str) and p.strip() for p in prompts)
        ):
            raise UsageError(f"{path.name}: {category!r} must list its prompts, got {prompts!r}")
        out[str(category).strip().lower()] = [p.strip() for p in prompts]
    return out


def prompt_settings(
    cache_dir: str | Path,
    prompts: str | Path | dict[str, list[str]],
    *,
    families: list[str] | None = None,
    weights_dir: str | Path | None = None,
) -> dict:
    """The prompts head's settings: the prompts, their text embeddings from the cache's CLIP
    family (`families` picks one when the cache holds several) and the weights they came
    from (`text_weights`; random-init ones mean the scores carry nothing: RANDOM_INIT_NOTE)."""
    texts = prompts if isinstance(prompts, dict) else read_prompts(prompts)
    cache = FeatureCache(cache_dir)
    clips = [f for f in cache.index.families() if f.extractor == "clip"]
    if families:
        clips = [f for f in clips if f.name in families]
    if not clips:
        raise UsageError(f"{cache.root} holds no CLIP family: the prompts head scores CLIP frames")
    if len(clips) > 1:
        raise UsageError(
            f"{cache.root} holds {len(clips)} CLIP families ({', '.join(f.name for f in clips)}); "
            "pick one with --family"
        )
    family = clips[0]
    text = prompt_embeddings(
        family.spec, texts, weights_dir=Path(weights_dir) if weights_dir else None
    )
    return {
        "prompts": texts,
        "text": {c: v.tolist() for c, v in text.embeddings.items()},
        "text_weights": text.weights,
    }
