"""PDQ hashes of the video's frames, for known-content matching, in the single decode pass.

No model and no weights: the hash is Meta's PDQ (`harmcache.known.pdq`, which owns hashing,
hex and distances), computed on the CPU from the frames the decode pass shares with the other
extractors. The family works offline and is the same with or without --random-init: its spec's
weights are `{"kind": "none"}`, its batch size 1 (each frame is hashed on its own, however
--batch-size groups them) and its precision fp32 on any device, so the fingerprint changes only
with the decode size, the rate and the version.

One row per sampled frame, `--pdq-fps` a second (default 1, vPDQ's rate) on the video's time
axis like `--fps` (the frame on screen at the centre of each segment); a still image is one row
at time 0. Each frame is hashed inside its black borders, as `harmcache match` hashes a query
(`pdq.content`). The family's arrays:

- features (L, 256) float32: the hash's bits, 0 or 1, most significant first
  (`pdq.from_bits(features)` gives back the (L, 32) uint8 hash, `pdq.to_hex` its hex form);
- extras `quality` (L,) int64: PDQ's quality, 0 to 100 (matching leaves out rows below
  `pdq.MIN_QUALITY`);
- extras `dihedral` (K, 8, 32) uint8: a still image's eight dihedral hashes (its own, then
  turned and mirrored, in `pdq.DIHEDRAL` order), K = 1, so that a turned or mirrored copy of a
  known picture is found; a video has K = 0 (vPDQ matches videos as they are shown). Every
  video of a shard carries the same extras, so the array is there, empty, for a video.

Heads do not train on it unless asked (`--features ...,pdq`): bits of a hash are for matching.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harmcache.extractors.base import ExtractionSession, Extractor, register_extractor
from harmcache.known import pdq
from harmcache.types import FeatureRecord, VideoInfo
from harmcache.video.image import IMAGE_BACKEND
from harmcache.video.sampling import fps_indices
from harmcache.video.stream_index import constant_rate_times

NO_WEIGHTS = {"kind": "none"}
QUALITY, DIHEDRAL = pdq.QUALITY_EXTRA, pdq.DIHEDRAL_EXTRA


@register_extractor("pdq")
class PdqExtractor(Extractor):
    """PDQ hashes of frames sampled at `pdq_fps`: (rows, 256) float32 bits, with the quality
    and a still image's dihedral hashes as extras."""

    version = "2"  # 2: frames hashed inside their black borders (pdq.content)
    dim = pdq.HASH_BITS
    weight_files: tuple[str, ...] = ()
    option_fields = {"fps": "pdq_fps"}

    def options(self) -> dict[str, Any]:
        return {
            "hash": "pdq",
            "fps": float(self.settings.pdq_fps),
            "sampling": "fps-pts",
            "row": "bits-msb-first",
            "image_variants": "dihedral",
        }

    def row_frames(self, info: VideoInfo, times: np.ndarray) -> np.ndarray:
        if info.backend == IMAGE_BACKEND:
            return np.zeros(1, dtype=np.int64)
        return fps_indices(times, self.settings.pdq_fps)

    def build(self, weights_path: Path | None) -> Any:
        return None  # nothing to build: `load` is a no-op

    def resolve_weights(self) -> dict:
        return dict(NO_WEIGHTS)

    def spec(self) -> dict[str, Any]:
        return {
            "extractor": self.name,
            "version": self.version,
            "weights": self.resolve_weights(),
            "options": self.options(),
            "batch_size": 1,
            "precision": "fp32",
            "decode": {"short_side_max": self.settings.decode_short_side},
        }

    def load(self) -> None:
        """Nothing to load; the hasher is imported on first use."""

    def run_batch(self, frames: np.ndarray, first_row: int) -> tuple[np.ndarray, dict]:
        """`compute_batch` as it is: no torch, no device, no thread setting."""
        return self.compute_batch(frames, first_row)

    def compute_batch(self, frames: np.ndarray, first_row: int) -> tuple[np.ndarray, dict]:
        # The dihedral hashes come from the same DCT as the hash itself and cost no more, so
        # every row gets them; the session keeps them for a still image alone.
        variants = np.zeros((len(frames), 8, pdq.HASH_BYTES), dtype=np.uint8)
        quality = np.zeros(len(frames), dtype=np.int64)
        for i, frame in enumerate(frames):
            variants[i], quality[i] = pdq.dihedral_with_quality(frame)
        bits = pdq.to_bits(variants[:, 0]).astype(np.float32)
        return bits, {QUALITY: quality, DIHEDRAL: variants}

    def session(self, info: VideoInfo, times: np.ndarray | None = None) -> ExtractionSession:
        if times is None:
            times = constant_rate_times(info.n_frames, info.fps)
        return PdqSession(self, info, np.asarray(times, dtype=np.float64))


class PdqSession(ExtractionSession):
    """The extractor's session: a still image keeps its dihedral hashes, a video drops them."""

    def finish(self) -> FeatureRecord:
        record = super().finish()
        if self.info.backend != IMAGE_BACKEND:
            record.extras[DIHEDRAL] = record.extras[DIHEDRAL][:0]
        return record
