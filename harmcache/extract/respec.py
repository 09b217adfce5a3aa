"""Rebuild extractors from saved family specs, so a run re-extracts new videos exactly as its
training features were extracted."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from harmcache.errors import UsageError
from harmcache.extractors.base import Extractor, ExtractSettings, WeightsSource, get_extractor
from harmcache.hashing import fingerprint


def extractor_for_spec(
    spec: dict, *, device: str = "cpu", weights_dir: Path | None = None
) -> Extractor:
    """An extractor whose fingerprint equals the spec's, or a UsageError saying what differs."""
    try:
        cls = get_extractor(spec["extractor"])
        settings = _settings(cls, spec, device, weights_dir)
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(
            f"the run's {spec.get('extractor', 'extractor')} spec is unusable "
            f"({type(exc).__name__}: {exc}); retrain the run on re-extracted features"
        ) from None
    extractor = cls(settings)
    if fingerprint(extractor.spec()) != fingerprint(spec):
        got = extractor.spec()
        differs = sorted(k for k in set(got) | set(spec) if got.get(k) != spec.get(k))
        raise UsageError(
            f"cannot reproduce the run's {cls.name} features: {', '.join(differs)} differ "
            "(other weights file? pass the --weights-dir the run was extracted with)"
        )
    return extractor


def _settings(
    cls: type[Extractor], spec: dict, device: str, weights_dir: Path | None
) -> ExtractSettings:
    if str(spec.get("version")) != cls.version:
        raise UsageError(
            f"{cls.name} features were made by extractor version {spec.get('version')}, "
            f"this harmcache has version {cls.version}: retrain on re-extracted features"
        )
    if spec.get("precision") == "fp16-autocast" and not device.startswith("cuda"):
        raise UsageError(f"{cls.name} features were extracted on CUDA (fp16): pass --device cuda")
    weights = spec["weights"]
    source = (
        WeightsSource(random_init=True, seed=int(weights["seed"]))
        if weights["kind"] == "random-init"
        else WeightsSource(weights_dir=weights_dir)
    )
    settings = ExtractSettings(
        device=device,
        batch_size=int(spec["batch_size"]),
        weights=source,
        decode_short_side=int(spec["decode"]["short_side_max"]),
    )
    options = spec["options"]
    # A spec holds the keys of the sampling it used (frames or fps, windows or window_every).
    return replace(
        settings,
        **{field: options[key] for key, field in cls.option_fields.items() if key in options},
    )


def default_spec(name: str) -> dict:
    """The spec of extractor `name` at its default settings (for one that needs no weights,
    such as pdq: its spec never depends on where weights come from)."""
    return get_extractor(name)(ExtractSettings()).spec()
