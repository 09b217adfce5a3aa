"""The three backbones at random init on small synthetic inputs: shapes, determinism,
fingerprints, TTA, weights resolution and loading, and CUDA against CPU."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch

# No test may touch the network; ultralytics reads this at import time.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("HARMCACHE_OFFLINE", "1")

from harmcache.errors import WeightsUnavailable  # noqa: E402
from harmcache.extractors.base import (  # noqa: E402
    ExtractSettings,
    WeightsSource,
    get_extractor,
)
from harmcache.extractors.preprocess import LETTERBOX_PAD, letterbox  # noqa: E402
from harmcache.extractors.yolo import detection_vector  # noqa: E402
from harmcache.hashing import sha256_file  # noqa: E402
from harmcache.types import VideoInfo  # noqa: E402
from harmcache.video.decoded import DecodedVideo  # noqa: E402

NAMES = ["clip", "yolo", "slowfast"]
SMALL = dict(
    frames=4, windows=1, batch_size=4, yolo_imgsz=64, slowfast_short_side=64, slowfast_crop=64
)
RANDOM = WeightsSource(random_init=True, seed=0)


def make_settings(**changes) -> ExtractSettings:
    return ExtractSettings(**{**SMALL, "weights": RANDOM, **changes})


def make_video(n: int = 80, h: int = 48, w: int = 64, seed: int = 0, fps: float = 25.0):
    """A decoded video built straight from seeded random frames (every frame decoded)."""
    frames = np.random.default_rng(seed).integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)
    return with_frames(frames, fps)


def with_frames(frames: np.ndarray, fps: float = 25.0) -> DecodedVideo:
    n, h, w = frames.shape[:3]
    info = VideoInfo(n, fps, n / fps, w, h, "synthetic")
    return DecodedVideo(info, np.arange(n, dtype=np.int64), np.ascontiguousarray(frames))


@pytest.fixture(scope="module")
def loaded():
    """One loaded random-init extractor per backbone (seed 0), shared: building CLIP costs ~2 s."""
    extractors = {name: get_extractor(name)(make_settings()) for name in NAMES}
    for extractor in extractors.values():
        extractor.load()
    return extractors


def sibling(loaded, name: str, **changes):
    """An extractor with other settings but the same seed-0 model (so no rebuild)."""
    extractor = get_extractor(name)(make_settings(**changes))
    extractor.model = loaded[name].model
    return extractor


# --- shapes ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_record_shapes_and_dtypes(loaded, name):
    video = make_video()
    record = loaded[name].extract(video)
    rows = SMALL["windows"] if name == "slowfast" else SMALL["frames"]
    assert record.features.shape == (rows, loaded[name].dim)
    assert record.features.dtype == np.float32
    assert np.isfinite(record.features).all()
    assert record.frame_index.shape == (rows,) and record.frame_index.dtype == np.int64
    assert record.timestamp.dtype == np.float64
    np.testing.assert_array_equal(record.timestamp, record.frame_index / video.info.fps)


def test_dims():
    assert {name: get_extractor(name).dim for name in NAMES} == {
        "clip": 512,
        "yolo": 160,
        "slowfast": 2304,
    }


def test_clip_and_yolo_sample_uniform_frames(loaded):
    video = make_video(n=80)
    for name in ("clip", "yolo"):
        np.testing.assert_array_equal(loaded[name].extract(video).frame_index, [10, 30, 50, 70])


def test_slowfast_rows_are_window_centres(loaded):
    extractor = sibling(loaded, "slowfast", windows=2)
    record = extractor.extract(make_video(n=200))
    windows = record.extras["window_frames"]
    assert windows.shape == (2, 32) and windows.dtype == np.int64
    np.testing.assert_array_equal(record.frame_index, [50, 150])
    np.testing.assert_array_equal(windows[:, 16], record.frame_index)
    np.testing.assert_array_equal(windows[:, 0], [18, 118])
    np.testing.assert_array_equal(np.diff(windows, axis=1), 2)


def test_yolo_detections_are_an_n_by_7_table(loaded):
    detections = loaded["yolo"].extract(make_video()).extras["detections"]
    assert detections.ndim == 2 and detections.shape[1] == 7
    assert detections.dtype == np.float32


# --- determinism -------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_features_repeat_bit_for_bit_whatever_ran_before(loaded, name):
    video, other = make_video(seed=0), make_video(n=50, h=40, w=72, seed=1)
    first = loaded[name].extract(video).features
    loaded[name].extract(other)  # a different shape in between (YOLO caches anchors by shape)
    np.testing.assert_array_equal(loaded[name].extract(video).features, first)


@pytest.mark.parametrize("name", NAMES)
def test_a_fresh_build_with_the_same_seed_gives_the_same_features(loaded, name):
    fresh = get_extractor(name)(make_settings())
    video = make_video()
    np.testing.assert_array_equal(
        fresh.extract(video).features, loaded[name].extract(video).features
    )


# --- fingerprints ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, change, changes_fingerprint",
    [
        ("clip", {"tta": "flip"}, True),
        ("clip", {"frames": 8}, True),
        ("clip", {"yolo_imgsz": 128}, False),
        ("clip", {"windows": 3}, False),
        ("yolo", {"yolo_imgsz": 128}, True),
        ("yolo", {"yolo_conf": 0.5}, True),
        ("yolo", {"tta": "flip"}, False),
        ("yolo", {"slowfast_crop": 32}, False),
        ("slowfast", {"slowfast_crop": 32}, True),
        ("slowfast", {"windows": 3}, True),
        ("slowfast", {"frames": 8}, False),
        ("slowfast", {"tta": "flip"}, False),
        ("slowfast", {"yolo_conf": 0.5}, False),
    ],
)
def test_fingerprint_follows_only_its_own_options(name, change, changes_fingerprint):
    cls = get_extractor(name)
    before = cls(make_settings()).fingerprint
    after = cls(make_settings(**change)).fingerprint
    assert (before != after) == changes_fingerprint


@pytest.mark.parametrize("name", NAMES)
def test_fingerprint_is_stable_and_names_random_init(name):
    cls = get_extractor(name)
    spec = cls(make_settings()).spec()
    assert spec["weights"] == {"kind": "random-init", "seed": 0}
    assert cls(make_settings()).fingerprint == cls(make_settings()).fingerprint


@pytest.mark.parametrize("name", NAMES)
def test_another_seed_gives_another_fingerprint_and_weights(loaded, name):
    other = get_extractor(name)(make_settings(weights=WeightsSource(random_init=True, seed=1)))
    assert other.fingerprint != loaded[name].fingerprint
    other.load()
    ours = dict(loaded[name].model.named_parameters())
    assert any(not torch.equal(p, ours[k]) for k, p in other.model.named_parameters())
    if name != "yolo":  # random-init YOLO finds nothing at conf 0.25: its rows are all zero
        video = make_video()
        assert not np.allclose(other.extract(video).features, loaded[name].extract(video).features)


# --- CLIP flip TTA -----------------------------------------------------------------------
def test_flip_tta_is_the_mean_of_frame_and_mirror_embeddings(loaded):
    video = make_video()
    mirrored = with_frames(video.frames[:, :, ::-1])
    plain = loaded["clip"].extract(video).features
    mirror = loaded["clip"].extract(mirrored).features
    tta = sibling(loaded, "clip", tta="flip").extract(video).features
    np.testing.assert_allclose(tta, (plain + mirror) / 2, rtol=1e-5, atol=1e-6)
    assert not np.allclose(tta, plain, atol=1e-3)  # random frames are not symmetric


def test_flip_tta_changes_nothing_on_a_symmetric_frame(loaded):
    half = make_video(w=32).frames
    symmetric = with_frames(np.concatenate([half, half[:, :, ::-1]], axis=2))
    plain = loaded["clip"].extract(symmetric).features
    tta = sibling(loaded, "clip", tta="flip").extract(symmetric).features
    np.testing.assert_allclose(tta, plain, rtol=1e-4, atol=1e-4)


# --- YOLO summaries and boxes ------------------------------------------------------------
def test_detection_vector_takes_max_confidence_and_counts():
    vec = detection_vector(np.array([0.3, 0.9, 0.5]), np.array([2, 2, 79]))
    assert vec.shape == (160,) and vec.dtype == np.float32
    expected = np.zeros(160, np.float32)
    expected[[2, 79]] = [0.9, 0.5]
    expected[[80 + 2, 80 + 79]] = [2, 1]
    np.testing.assert_allclose(vec, expected)


def test_letterbox_pads_grey_and_maps_boxes_back():
    x = torch.rand(2, 3, 48, 64)
    out, box = letterbox(x, 64)
    assert out.shape == (2, 3, 64, 64)
    assert (box.pad_x, box.pad_y) == (0, 8)
    assert torch.all(out[..., :8, :] == LETTERBOX_PAD) and torch.all(
        out[..., 56:, :] == LETTERBOX_PAD
    )
    # The content area maps back to the whole frame; boxes outside it are clipped.
    np.testing.assert_allclose(box.unmap_boxes(np.array([[0, 8, 64, 56]])), [[0, 0, 64, 48]])
    np.testing.assert_allclose(box.unmap_boxes(np.array([[-5, 0, 70, 64]])), [[0, 0, 64, 48]])


class _OneBoxDetector(torch.nn.Module):
    """Stands in for YOLO: one class-3 box (letterbox xywh 32,32,16,16, conf 0.9) on image 0."""

    def forward(self, x):
        pred = torch.zeros(x.shape[0], 4 + 80, 10)
        pred[0, :4, 0] = torch.tensor([32.0, 32.0, 16.0, 16.0])
        pred[0, 4 + 3, 0] = 0.9
        return pred, {}


def test_yolo_rows_and_boxes_from_the_detector_output():
    extractor = get_extractor("yolo")(make_settings())
    extractor.model = _OneBoxDetector()  # set, so load() keeps it
    record = extractor.extract(make_video(h=48, w=64))
    # 48x64 frame, letterbox 64: scale 1, 8 px of grey on top, so y shifts by -8.
    np.testing.assert_allclose(record.extras["detections"], [[0, 24, 16, 40, 32, 0.9, 3]])
    assert record.features[0, 3] == pytest.approx(0.9) and record.features[0, 80 + 3] == 1
    assert np.count_nonzero(record.features) == 2


# --- weights resolution ------------------------------------------------------------------
@pytest.fixture
def no_weights_env(monkeypatch):
    monkeypatch.delenv("HARMCACHE_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("HARMCACHE_OFFLINE", "1")


@pytest.mark.parametrize("name", NAMES)
def test_empty_weights_dir_names_the_file_and_the_ways_out(tmp_path, no_weights_env, name):
    cls = get_extractor(name)
    extractor = cls(make_settings(weights=WeightsSource(weights_dir=tmp_path)))
    file = cls.weight_files[0].replace(".", r"\.")
    with pytest.raises(
        WeightsUnavailable, match=rf"{file} is not in .*--weights-dir.*--random-init"
    ):
        extractor.load()


@pytest.mark.parametrize("name", NAMES)
def test_offline_without_cached_weights_fails_fast(tmp_path, monkeypatch, no_weights_env, name):
    cls = get_extractor(name)
    monkeypatch.setattr(cls, "library_cache_paths", classmethod(lambda c: [tmp_path / "x.pt"]))
    monkeypatch.setattr(cls, "download", classmethod(lambda c, d: pytest.fail("tried to download")))
    extractor = cls(make_settings(weights=WeightsSource()))
    start = time.monotonic()
    with pytest.raises(WeightsUnavailable, match=r"HARMCACHE_OFFLINE=1 forbids downloading"):
        extractor.fingerprint  # noqa: B018 - resolving the weights is what raises
    assert time.monotonic() - start < 1.0


# --- loading real-format weights ---------------------------------------------------------
def _from_dir(name: str, weights_dir):
    return get_extractor(name)(make_settings(weights=WeightsSource(weights_dir=weights_dir)))


def test_yolo_loads_an_ultralytics_checkpoint(tmp_path, loaded):
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    model = DetectionModel("yolov8n.yaml", nc=80, verbose=False)
    path = tmp_path / "yolov8n.pt"
    torch.save({"model": model, "train_args": {}}, path)  # ultralytics' checkpoint layout
    extractor = _from_dir("yolo", tmp_path)
    assert extractor.spec()["weights"] == {
        "kind": "file",
        "name": "yolov8n.pt",
        "sha256": sha256_file(path),
    }
    record = extractor.extract(make_video())
    assert record.features.shape == (4, 160)
    # Same seed-0 weights as the random-init model: the raw predictions agree bit for bit.
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        np.testing.assert_array_equal(extractor.model(x)[0], loaded["yolo"].model(x)[0])


def test_yolo_refuses_a_detector_for_other_classes(tmp_path):
    from ultralytics.nn.tasks import DetectionModel

    torch.save(
        {"model": DetectionModel("yolov8n.yaml", nc=2, verbose=False)}, tmp_path / "yolov8n.pt"
    )
    with pytest.raises(
        WeightsUnavailable, match=r"not a 80-class COCO detector.*needs yolov8n\.pt"
    ):
        _from_dir("yolo", tmp_path).load()


@pytest.mark.slow
def test_slowfast_loads_a_pytorchvideo_checkpoint_ignoring_the_classifier(tmp_path, loaded):
    from pytorchvideo.models.hub import slowfast_r50

    torch.manual_seed(0)
    state = slowfast_r50(pretrained=False).state_dict()  # the zoo layout, 400-way proj included
    path = tmp_path / "SLOWFAST_8x8_R50.pyth"
    torch.save({"model_state": state, "epoch": 196}, path)
    extractor = _from_dir("slowfast", tmp_path)
    assert extractor.spec()["weights"]["sha256"] == sha256_file(path)
    video = make_video()
    # Same seed-0 weights as random init (pool kernels hold no parameters): identical features.
    np.testing.assert_array_equal(
        extractor.extract(video).features, loaded["slowfast"].extract(video).features
    )


def test_slowfast_refuses_a_checkpoint_of_another_model(tmp_path):
    torch.save(
        {"model_state": {"fc.weight": torch.zeros(2, 2)}}, tmp_path / "SLOWFAST_8x8_R50.pyth"
    )
    with pytest.raises(WeightsUnavailable, match=r"not a SlowFast R50 checkpoint: \d+ missing"):
        _from_dir("slowfast", tmp_path).load()


def _save_tiny_clip(path, embed_dim: int = 512, jit: bool = False) -> None:
    """A full CLIP (what clip.load reads) with a 1-layer, 64-wide vision tower: as a state dict,
    or as a TorchScript archive like the official ViT-B-32.pt."""
    from clip.model import CLIP

    model = CLIP(embed_dim, 224, 1, 64, 32, 8, 16, 64, 1, 1).eval()
    if not jit:
        torch.save(model.state_dict(), path)
        return
    example = (torch.zeros(1, 3, 224, 224), torch.zeros(1, 8, dtype=torch.long))
    torch.jit.save(torch.jit.trace(model, example, check_trace=False), str(path))


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("jit", [False, True], ids=["state-dict", "torchscript"])
def test_clip_loads_clip_checkpoints(tmp_path, jit):
    _save_tiny_clip(tmp_path / "ViT-B-32.pt", jit=jit)
    extractor = _from_dir("clip", tmp_path)
    assert extractor.spec()["weights"]["sha256"] == sha256_file(tmp_path / "ViT-B-32.pt")
    record = extractor.extract(make_video())
    assert record.features.shape == (4, 512) and np.isfinite(record.features).all()


def test_clip_refuses_weights_of_another_width(tmp_path):
    _save_tiny_clip(tmp_path / "ViT-B-32.pt", embed_dim=256)
    with pytest.raises(WeightsUnavailable, match=r"is not CLIP ViT-B/32.*into 256 dims"):
        _from_dir("clip", tmp_path).load()


# --- the weights command -----------------------------------------------------------------
def _weights_cli(*args: str):
    import typer
    from harmcache.cli import weights_cmd
    from typer.testing import CliRunner

    app = typer.Typer()
    weights_cmd.register(app)
    return CliRunner().invoke(app, ["weights", *args])


def test_weights_list_names_every_canonical_file():
    result = _weights_cli("list")
    assert result.exit_code == 0
    for line in ("clip: ViT-B-32.pt", "slowfast: SLOWFAST_8x8_R50.pyth", "yolo: yolov8n.pt"):
        assert line in result.stdout


def test_weights_download_offline_is_a_one_line_error(tmp_path, no_weights_env):
    result = _weights_cli("download", str(tmp_path), "--extractors", "yolo")
    assert result.exit_code == WeightsUnavailable.exit_code
    assert result.stderr.strip() == "error: HARMCACHE_OFFLINE=1 forbids downloading yolov8n.pt"


def test_weights_download_rejects_unknown_extractors(tmp_path):
    result = _weights_cli("download", str(tmp_path), "--extractors", "clip,resnet")
    assert result.exit_code == 2
    assert "unknown extractor 'resnet'" in result.stderr


# --- CUDA --------------------------------------------------------------------------------
REL_L2_BOUND = 2e-2
"""fp16 autocast against fp32: relative L2 error of a video's feature matrix."""


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", NAMES)
def test_cuda_fp16_features_match_cpu_fp32(loaded, name):
    video = make_video()
    cpu = loaded[name].extract(video)
    cuda = get_extractor(name)(make_settings(device="cuda"))
    assert cuda.spec()["precision"] == "fp16-autocast"
    record = cuda.extract(video)
    for value in (record.features, record.frame_index, record.timestamp, *record.extras.values()):
        assert isinstance(value, np.ndarray)  # nothing left on the device
    error = np.linalg.norm(record.features - cpu.features)
    assert error <= REL_L2_BOUND * max(np.linalg.norm(cpu.features), 1e-6)
