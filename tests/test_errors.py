"""Every harmcache error survives the process boundaries a run crosses (decode workers pickle,
Ray uses cloudpickle) with its class, message and fields intact."""

from __future__ import annotations

import pickle

import cloudpickle
import pytest

from harmcache import errors

ALL = [
    errors.HarmcacheError("base"),
    errors.UsageError("no inputs given"),
    errors.WeightsUnavailable("yolov8n.pt is not in /w"),
    errors.CacheError("the cache is read-only"),
    errors.DataError("0 labels matched"),
    errors.VideoError("decode_error", "decode error at frame 7"),
]


@pytest.mark.parametrize("error", ALL, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize(
    "dumps,loads", [(pickle.dumps, pickle.loads), (cloudpickle.dumps, pickle.loads)]
)
def test_errors_round_trip_with_their_fields(error, dumps, loads):
    back = loads(dumps(error))
    assert type(back) is type(error)
    assert str(back) == str(error)
    assert back.message == error.message
    if isinstance(error, errors.VideoError):
        assert back.reason == error.reason
    else:
        assert back.exit_code == error.exit_code


def test_every_error_class_is_covered():
    classes = {
        obj for obj in vars(errors).values() if isinstance(obj, type) and issubclass(obj, Exception)
    }
    assert classes == {type(e) for e in ALL}
