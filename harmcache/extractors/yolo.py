"""YOLOv8n detections, summarised per uniformly sampled frame.

The row is a fixed 160-d vector: per-class max confidence, then per-class count, over the 80
COCO classes. The raw detections are kept in extras so other summaries can be computed later
without running the detector again.

The DetectionModel is called directly rather than through `YOLO.predict`, whose own batching,
preprocessing and plotting would decide the numbers (and may reach for the network).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from harmcache.errors import WeightsUnavailable
from harmcache.extractors.base import Extractor, FeatureRecord, register_extractor
from harmcache.extractors.sampled import frame_sampling_options, sampled_frames
from harmcache.types import VideoInfo

NUM_CLASSES = 80
IOU = 0.45
MAX_DET = 300
"""Detections kept per frame; random-init weights give random boxes, so the cap matters."""
DETECTION_COLUMNS = ("row", "x1", "y1", "x2", "y2", "conf", "cls")


def detection_vector(conf: np.ndarray, cls: np.ndarray, nc: int = NUM_CLASSES) -> np.ndarray:
    """(2·nc,) float32: max confidence per class (0 when absent), then detections per class."""
    cls = np.asarray(cls, dtype=np.int64)
    best = np.zeros(nc, dtype=np.float32)
    np.maximum.at(best, cls, np.asarray(conf, dtype=np.float32))
    counts = np.bincount(cls, minlength=nc).astype(np.float32)
    return np.concatenate([best, counts])


@register_extractor("yolo")
class YoloExtractor(Extractor):
    """YOLOv8n on letterboxed frames: (frames, 160) float32 rows and
    extras['detections'] (N, 7) float32 rows [row, x1, y1, x2, y2, conf, cls] in the decoded
    frame's pixels."""

    version = "1"
    dim = 2 * NUM_CLASSES
    weight_files = ("yolov8n.pt",)
    option_fields = {"frames": "frames", "fps": "fps", "imgsz": "yolo_imgsz", "conf": "yolo_conf"}

    def options(self) -> dict[str, Any]:
        s = self.settings
        return {
            "model": "yolov8n",
            **frame_sampling_options(s),
            "imgsz": s.yolo_imgsz,
            "letterbox": "bilinear-antialias, pad 114",
            "conf": s.yolo_conf,
            "iou": IOU,
            "max_det": MAX_DET,
        }

    def row_frames(self, info: VideoInfo, times: np.ndarray) -> np.ndarray:
        return sampled_frames(self.settings, info, times)

    def build(self, weights_path: Path | None) -> Any:
        from ultralytics.nn.tasks import DetectionModel, load_checkpoint

        if weights_path is None:
            model = DetectionModel("yolov8n.yaml", nc=NUM_CLASSES, verbose=False)
        else:
            model = load_checkpoint(str(weights_path), device="cpu", fuse=False)[0]
        if getattr(model.model[-1], "nc", None) != NUM_CLASSES:
            raise WeightsUnavailable(
                f"{weights_path} is not a {NUM_CLASSES}-class COCO detector; "
                f"the yolo extractor needs {self.weight_files[0]}"
            )
        # Folding BatchNorm into the convolutions is what ultralytics does for inference too.
        return model.fuse(verbose=False)

    def compute_batch(self, frames: np.ndarray, first_row: int) -> tuple[np.ndarray, dict]:
        feats = np.zeros((len(frames), self.dim), dtype=np.float32)
        detections = [np.zeros((0, len(DETECTION_COLUMNS)), dtype=np.float32)]
        kept = self._detect_chunk(frames)
        for i, det in enumerate(kept):
            feats[i] = detection_vector(det[:, 4], det[:, 5])
            row = first_row + i
            detections.append(np.column_stack([np.full(len(det), row), det]).astype(np.float32))
        return feats, {"detections": np.concatenate(detections)}

    def finish_record(self, record: FeatureRecord, row_frames: np.ndarray) -> None:
        if "detections" not in record.extras:
            record.extras["detections"] = np.zeros((0, len(DETECTION_COLUMNS)), np.float32)

    def _detect_chunk(self, frames: np.ndarray) -> list[np.ndarray]:
        """Per frame: (n, 6) float32 [x1, y1, x2, y2, conf, cls] in decoded-frame pixels."""
        from ultralytics.utils.nms import non_max_suppression

        from harmcache.extractors.preprocess import letterbox, to_tensor

        x, box = letterbox(to_tensor(frames, self.settings.device), self.settings.yolo_imgsz)
        pred = self.model(x)
        pred = pred[0] if isinstance(pred, (list, tuple)) else pred
        kept = non_max_suppression(
            pred.float(),
            conf_thres=self.settings.yolo_conf,
            iou_thres=IOU,
            max_det=MAX_DET,
            nc=NUM_CLASSES,
            # NMS stops early past a wall-clock limit, which would make the output depend on
            # machine load; no limit keeps it deterministic.
            max_time_img=math.inf,
        )
        out = []
        for det in kept:
            det = det.float().cpu().numpy()
            det[:, :4] = box.unmap_boxes(det[:, :4])
            out.append(det)
        return out

    @classmethod
    def library_cache_paths(cls) -> list[Path]:
        from ultralytics.utils import SETTINGS

        name = cls.weight_files[0]
        return [Path(SETTINGS["weights_dir"]) / name, Path.cwd() / name]

    @classmethod
    def download(cls, target_dir: Path) -> Path:
        from ultralytics.utils.downloads import attempt_download_asset

        target = Path(target_dir) / cls.weight_files[0]
        target.parent.mkdir(parents=True, exist_ok=True)
        path = Path(attempt_download_asset(str(target)))
        # attempt_download_asset returns the name it tried even when nothing arrived.
        if not path.is_file():
            raise WeightsUnavailable(f"ultralytics could not download {target.name}")
        return path
