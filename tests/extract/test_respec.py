import pytest

from harmcache.errors import UsageError
from harmcache.extract.respec import extractor_for_spec
from harmcache.extractors.base import ExtractSettings, WeightsSource, get_extractor
from harmcache.store.family import Family

SETTINGS = ExtractSettings(
    frames=5,
    windows=2,
    tta="flip",
    yolo_imgsz=96,
    yolo_conf=0.3,
    slowfast_crop=64,
    slowfast_short_side=96,
    batch_size=4,
    weights=WeightsSource(random_init=True, seed=7),
)


@pytest.mark.parametrize("name", ["clip", "yolo", "slowfast"])
def test_saved_spec_rebuilds_the_same_family(name):
    spec = get_extractor(name)(SETTINGS).spec()
    rebuilt = extractor_for_spec(spec)
    assert Family.from_spec(rebuilt.spec()) == Family.from_spec(spec)


def test_other_code_version_is_refused():
    spec = {**get_extractor("clip")(SETTINGS).spec(), "version": "0"}
    with pytest.raises(UsageError, match="made by extractor version 0"):
        extractor_for_spec(spec)


def test_gpu_features_need_a_gpu_to_reproduce():
    spec = {**get_extractor("clip")(SETTINGS).spec(), "precision": "fp16-autocast"}
    with pytest.raises(UsageError, match="extracted on CUDA"):
        extractor_for_spec(spec)


def test_other_weights_are_refused(tmp_path):
    spec = get_extractor("yolo")(SETTINGS).spec()
    spec = {**spec, "weights": {"kind": "file", "name": "yolov8n.pt", "sha256": "0" * 64}}
    (tmp_path / "yolov8n.pt").write_bytes(b"other weights")
    with pytest.raises(UsageError, match="cannot reproduce the run's yolo features: weights"):
        extractor_for_spec(spec, weights_dir=tmp_path)
