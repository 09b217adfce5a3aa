"""What runs on Ray workers: decode tasks (CPU) that probe each video once, and extract actors
that run the shared per-video path (`extract_video`) and write the shards themselves.

A decode task decodes a video whole only when it fits one decode chunk (a short clip, the usual
case). Either way its row carries the decode plan the probe made, so the video is never probed
again; a longer video's row carries no frames, and the actor that takes it decodes it from that
plan, chunk by chunk, feeding its models as the local engine does. Memory stays bounded by the
chunk size on both sides; such a video's decoding does not overlap its own models.

Retries are safe by construction: an actor groups its batch into shards deterministically
(sorted by video id, through the same `ShardBatcher` as the local engine) and shard names derive
from the video ids they hold, so a batch that Ray retries after a worker died skips the shards
it already committed instead of computing and writing them again.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from harmcache.errors import CacheError, VideoError
from harmcache.extract.batcher import Shard, ShardBatcher
from harmcache.extract.jobs import DecodeResult, VideoJob, decode_job
from harmcache.extract.per_video import VideoOutcome, extract_video
from harmcache.extractors.base import Extractor, ExtractSettings, get_extractor
from harmcache.hashing import canonical_json
from harmcache.provenance import library_versions
from harmcache.store.family import Family
from harmcache.store.shard import shard_name, write_shard
from harmcache.video.decoded import DecodedVideo


def decode_row(
    row: dict[str, Any], *, settings: dict[str, ExtractSettings], sides: list[int]
) -> dict[str, Any]:
    """Ray CPU task: probe one job, decode it if it fits one chunk, and carry its plan and
    frames as a row (one column pair per decode size, so every row has the same columns;
    unused sizes hold empty arrays)."""
    names = str(row["extractors"]).split(",")
    job = VideoJob(str(row["file"]), str(row["video_id"]), tuple((n, settings[n]) for n in names))
    result = decode_job(job, max_chunks=1)
    out: dict[str, Any] = {"path": row["path"], "video_id": job.video_id}
    out["reason"] = result.error.reason if result.error else ""
    out["message"] = result.error.message if result.error else ""
    # The plan travels pickled: it holds arrays and the chunk plan, exactly as probed.
    out["plan"] = pickle.dumps(result.plan) if result.error is None else b""
    out["decoded"] = bool(result.decoded)
    for side in sides:
        video = result.decoded.get(side)
        out[f"frames_{side}"] = video.frames if video else np.zeros((0, 0, 0, 3), np.uint8)
        out[f"indices_{side}"] = video.indices if video else np.zeros(0, np.int64)
    return out


def _decode_results(batch: dict[str, Any]) -> list[tuple[str, DecodeResult]]:
    """Each row as (its input path as given, what its decode task found). The result's job
    holds the path the worker opens (absolute: nodes do not share the driver's directory)."""
    out = []
    for i in range(len(batch["video_id"])):
        path, vid = str(batch["path"][i]), str(batch["video_id"][i])
        if batch["reason"][i]:
            error = VideoError(str(batch["reason"][i]), str(batch["message"][i]))
            out.append((path, DecodeResult(VideoJob(path, vid, ()), error=error)))
            continue
        plan = pickle.loads(batch["plan"][i])
        decoded = {}
        if bool(batch["decoded"][i]):
            for side in plan.sides:
                # Copies: the batch is a read-only view into Ray's object store.
                frames = np.array(batch[f"frames_{side}"][i], dtype=np.uint8)
                indices = np.array(batch[f"indices_{side}"][i], dtype=np.int64)
                decoded[side] = DecodedVideo(plan.info, indices, frames, plan.times)
        out.append((path, DecodeResult(plan.job, decoded, None, 0.0, plan)))
    return out


class ExtractActor:
    """Ray actor: builds and loads the extractors once, then extracts and commits batches."""

    def __init__(
        self,
        *,
        settings: dict[str, ExtractSettings],
        families: dict[str, Family],
        folders: dict[str, str],
        shard_size: int,
    ):
        self.families = families
        self.folders = {name: Path(folder) for name, folder in folders.items()}
        self.shard_size = shard_size
        self.extractors: dict[str, Extractor] = {}
        for name, s in settings.items():
            if s.device.startswith("cuda"):
                s = replace(s, device="cuda")  # Ray shows this actor only its own GPU(s)
            extractor = get_extractor(name)(s)
            if extractor.fingerprint != families[name].fingerprint:
                raise CacheError(
                    f"{name} on this Ray node has fingerprint {extractor.fingerprint[:12]}, the "
                    f"driver {families[name].fingerprint[:12]}: give every node the same "
                    "weights (a shared --weights-dir) and the same pinned packages"
                )
            extractor.load()
            self.extractors[name] = extractor

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = sorted(_decode_results(batch), key=lambda row: row[1].job.video_id)
        shards = ShardBatcher.group(
            ((r.job.video_id, [n for n, _ in r.job.extractors]) for _, r in rows if r.plan),
            self.shard_size,
        )
        # Committed before a worker died and Ray retried the batch: neither computed nor written.
        committed = {shard for shard in shards if self._file(shard).exists()}
        done = {(shard.family, vid) for shard in committed for vid in shard.video_ids}
        outcomes = {r.job.video_id: self._extract(path, r, done) for path, r in rows}
        held: dict[str, list[tuple[str, str, int]]] = {r.job.video_id: [] for _, r in rows}
        for shard in shards:
            members, file = self._commit(shard, outcomes, shard in committed)
            for vid in members:
                held[vid].append((self.families[shard.family].name, file, len(members)))
        vids = [r.job.video_id for _, r in rows]
        ledgers = [outcomes[vid].ledger() for vid in vids]
        return {
            "video_id": np.array(vids),
            "path": np.array([path for path, _ in rows]),
            # (extractor or "" for the video itself, reason, message) per failure
            "failures": np.array(
                [json.dumps([[n or "", e.reason, e.message] for n, e in led]) for led in ledgers]
            ),
            "backend": np.array([r.plan.info.decoded_by if r.plan else "" for _, r in rows]),
            "versions": np.array([canonical_json(library_versions())] * len(rows)),
            # (family, shard file, videos in it): lets the driver index without opening shards
            "shards": np.array([json.dumps(held[vid]) for vid in vids]),
        }

    def _file(self, shard: Shard) -> Path:
        return self.folders[shard.family] / shard_name(list(shard.video_ids))

    def _extract(self, path: str, result: DecodeResult, done: set) -> VideoOutcome:
        """The video through every extractor whose shard is not committed yet; its features
        record the input path as given."""
        if result.error is not None:
            return VideoOutcome(result.job, error=result.error)
        vid = result.job.video_id
        chosen = {n: self.extractors[n] for n, _ in result.job.extractors if (n, vid) not in done}
        if not chosen:
            return VideoOutcome(result.job)
        outcome = extract_video(result.plan, result.chunks(), chosen, replay=result.chunks)
        outcome.features = {n: replace(f, source_path=path) for n, f in outcome.features.items()}
        return outcome

    def _commit(
        self, shard: Shard, outcomes: dict[str, VideoOutcome], committed: bool
    ) -> tuple[list[str], str]:
        """Write the shard's videos that succeeded (a failed one is left out, never failing
        the batch); returns the videos it holds and its file name."""
        if committed:
            return list(shard.video_ids), self._file(shard).name
        items = [
            outcomes[vid].features[shard.family]
            for vid in shard.video_ids
            if shard.family in outcomes[vid].features
        ]
        if not items:
            return [], ""
        family = self.families[shard.family]
        final = write_shard(self.folders[shard.family], family, items)
        return [item.video_id for item in items], final.name
