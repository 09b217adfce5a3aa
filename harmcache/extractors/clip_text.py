"""CLIP text embeddings for prompts, from the text tower of the same weights that made a cached
CLIP family: a prompt is comparable with a frame embedding only when both towers were trained
together, so the weights are found by the family's own spec and their SHA-256 must match it.

With random-init weights the text tower is random too (seeded by the spec) and bears no
relation to the image tower: the embeddings exercise the pipeline but mean nothing, and
`PromptText.random_init` says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harmcache.errors import UsageError, WeightsUnavailable
from harmcache.extractors.clip import ClipExtractor

CONTEXT_LENGTH = 77
VOCAB_SIZE = 49408
TEXT_WIDTH = 512
TEXT_HEADS = 8
TEXT_LAYERS = 12


@dataclass
class PromptText:
    """Each category's prompt embeddings (prompts × 512, L2-normalised) and their origin."""

    embeddings: dict[str, np.ndarray]
    weights: dict
    """The weights' identity, as in the family's spec."""
    random_init: bool


def prompt_embeddings(
    spec: dict, prompts: dict[str, list[str]], *, weights_dir: Path | None = None
) -> PromptText:
    """The text embeddings of `prompts` (category → prompts) from the CLIP weights of the
    family `spec`. Raises UsageError when the family is not CLIP or the weights found are not
    the family's."""
    import torch

    if spec.get("extractor") != "clip":
        raise UsageError(f"prompts need a CLIP family; this one is {spec.get('extractor')!r}")
    weights = spec.get("weights") or {}
    random_init = weights.get("kind") == "random-init"
    model = (
        _random_text_tower(int(weights.get("seed", 0)))
        if random_init
        else _load(weights, weights_dir)
    )
    import clip

    out = {}
    with torch.inference_mode():
        for category, texts in prompts.items():
            emb = model.encode_text(clip.tokenize(texts, context_length=CONTEXT_LENGTH)).float()
            emb = emb / emb.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            out[category] = emb.numpy().astype(np.float32)
    return PromptText(out, weights, random_init)


def _random_text_tower(seed: int):
    """CLIP ViT-B/32's text tower with seeded random weights (the image tower is a token one:
    only the text side is used)."""
    import torch
    from clip.model import CLIP

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIP(
            embed_dim=ClipExtractor.dim,
            image_resolution=32,
            vision_layers=1,
            vision_width=64,
            vision_patch_size=32,
            context_length=CONTEXT_LENGTH,
            vocab_size=VOCAB_SIZE,
            transformer_width=TEXT_WIDTH,
            transformer_heads=TEXT_HEADS,
            transformer_layers=TEXT_LAYERS,
        )
    return model.eval()


def _load(weights: dict, weights_dir: Path | None):
    """The whole CLIP model from the file the family was extracted with (found as extraction
    finds it: --weights-dir, HARMCACHE_WEIGHTS_DIR or the library's cache)."""
    import clip

    from harmcache.extractors.base import ExtractSettings, WeightsSource
    from harmcache.extractors.weights import resolve_weights

    settings = ExtractSettings(weights=WeightsSource(random_init=False, weights_dir=weights_dir))
    try:
        path, found = resolve_weights(ClipExtractor, settings)
    except WeightsUnavailable as exc:
        raise UsageError(
            f"prompts need the family's CLIP weights for the text tower: {exc}"
        ) from None
    if found.get("sha256") != weights.get("sha256"):
        raise UsageError(
            f"the CLIP weights found ({path}, sha256 {str(found.get('sha256'))[:12]}) are not the "
            f"ones that made the cached frames (sha256 {str(weights.get('sha256'))[:12]}): a "
            "prompt is comparable with a frame only through the same model; pass the family's "
            "weights with --weights-dir"
        )
    return clip.load(str(path), device="cpu", jit=False)[0].eval()
