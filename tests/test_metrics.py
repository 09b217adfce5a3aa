"""Per-second evaluation: every whole second is a sample, positive when it overlaps an event,
scored by the highest snippet over it; checked by hand and against a second-by-second loop.
Events come from a `path|video_id,start,end` CSV whose bad rows are refused by line."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from harmcache.errors import DataError, UsageError
from harmcache.heads.timeline import Timeline
from harmcache.metrics import event_seconds, segment_metrics, segment_scores_per_second
from harmcache.train.events import read_events


def test_scores_per_second_by_hand():
    # [0,1) .1; [1,2) .9; [2.5,3.5) .4 covers seconds 2 and 3; [2,2.5) .2 loses to it in 2.
    timeline = ([0, 1, 2, 2.5], [1, 2, 2.5, 3.5], [0.1, 0.9, 0.2, 0.4])
    np.testing.assert_allclose(segment_scores_per_second(timeline, 4.2), [0.1, 0.9, 0.4, 0.4])
    # Seconds no snippet covers score 0; the partial last second (5.9 → 5) is not a sample.
    np.testing.assert_allclose(segment_scores_per_second(([1], [2], [0.7]), 5.9), [0, 0.7, 0, 0, 0])
    assert len(segment_scores_per_second(([0], [1], [0.5]), 0.5)) == 0


def test_event_seconds_by_hand():
    # (1.5, 3.0) reaches seconds 1 and 2 but not 3; (3.9, 10) only second 3 of a 4.2 s video.
    np.testing.assert_array_equal(event_seconds([(1.5, 3.0)], 4.2), [0, 1, 1, 0])
    np.testing.assert_array_equal(event_seconds([(3.9, 10.0)], 4.2), [0, 0, 0, 1])
    np.testing.assert_array_equal(event_seconds([], 3.0), [0, 0, 0])
    np.testing.assert_array_equal(event_seconds([(0, 1), (2, 2.01)], 3.0), [1, 0, 1])


def brute_force(events, timelines, durations):
    y, s = [], []
    for key, (start, end, score) in timelines.items():
        for i in range(int(np.floor(durations[key]))):
            y.append(any(a < i + 1 and b > i for a, b in events.get(key, [])))
            over = [p for a, b, p in zip(start, end, score) if a < i + 1 and b > i]
            s.append(max(over) if over else 0.0)
    return np.array(y), np.array(s)


@pytest.mark.parametrize("seed", range(4))
def test_segment_metrics_agree_with_a_second_by_second_loop(seed):
    rng = np.random.default_rng(seed)
    events, timelines, durations = {}, {}, {}
    for v in range(12):
        key = f"video{v}"
        durations[key] = rng.uniform(5, 40)
        step = rng.choice([0.5, 1.0, 1.5, 2.0])
        start = np.arange(0, durations[key], step)
        keep = rng.random(len(start)) < 0.9
        start = start[keep]
        end = np.minimum(start + step, durations[key])
        timelines[key] = (start, end, rng.random(len(start)))
        if v % 3:
            a = rng.uniform(0, durations[key] - 2)
            events[key] = [(a, a + rng.uniform(0.2, 8))]
    events["not evaluated"] = [(0.0, 5.0)]  # a video without a timeline is ignored
    got = segment_metrics(events, timelines, durations)
    y, s = brute_force(events, timelines, durations)
    assert got == {
        "segment_auroc": pytest.approx(roc_auc_score(y, s), abs=1e-12),
        "segment_ap": pytest.approx(average_precision_score(y, s), abs=1e-12),
        "n_seconds": len(y),
        "n_positive_seconds": int(y.sum()),
    }


def test_timeline_forms_agree_and_one_class_gives_nan():
    start, end, score = np.array([0.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0]), [0.2, 0.9, 0.1]
    forms = [
        (start, end, score),
        Timeline(start, end, np.array(score)),
        Timeline(start, end, np.array(score)).to_json(),
    ]
    results = [segment_metrics({"a": [(1.2, 1.8)]}, {"a": f}, {"a": 3.0}) for f in forms]
    assert results[0] == results[1] == results[2]
    assert results[0]["segment_ap"] == 1.0 and results[0]["n_positive_seconds"] == 1
    safe = segment_metrics({}, {"a": forms[0]}, {"a": 3.0})
    assert np.isnan(safe["segment_auroc"]) and np.isnan(safe["segment_ap"])
    assert safe["n_seconds"] == 3 and safe["n_positive_seconds"] == 0


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: segment_metrics({}, {"a": ([0], [1], [0.5])}, {}), r"no duration for 1 of 1"),
        (lambda: segment_scores_per_second(([0, 1], [1], [0.5]), 2.0), r"as many starts, ends"),
        (lambda: segment_scores_per_second(([0], [1], [0.5]), -1.0), r"finite number of sec"),
        (lambda: event_seconds([(0, 1)], float("nan")), r"duration must be a finite number"),
    ],
)
def test_bad_metric_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- the events CSV -------------------------------------------------------------------------------
def write(tmp_path, text: str, name: str = "events.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_read_events(tmp_path):
    path = write(
        tmp_path,
        "\ufeffPath,Start,End\nlong/a.mp4,12.5,18\nb.mp4,0,4\n\nlong/a.mp4,3,4.25\n",
    )
    assert read_events(path) == {"long/a.mp4": [(3.0, 4.25), (12.5, 18.0)], "b.mp4": [(0.0, 4.0)]}
    vid = "ab" * 32
    by_id = write(tmp_path, f"video_id,start,end,note\n{vid},1,2,fight\n", "ids.csv")
    assert read_events(by_id) == {vid: [(1.0, 2.0)]}


@pytest.mark.parametrize(
    "text, error, message",
    [
        ("path,begin,end\na,1,2\n", DataError, r"needs a header with columns path \(or video_id\)"),
        ("", DataError, r"found: nothing"),
        ("path,start,end\n", DataError, r"no events in"),
        ("path,start,end\n,1,2\n", DataError, r"events.csv:2: the path column is empty"),
        ("path,start,end\na,1,2\na,x,3\n", DataError, r"events.csv:3: start must be a number"),
        ("path,start,end\na,1,\n", DataError, r"end must be a number of seconds, got 'nothing'"),
        ("path,start,end\na,1,inf\n", DataError, r"end must be a finite number of seconds"),
        ("path,start,end\na,-1,2\n", DataError, r"start must be at least 0 seconds, got -1.0"),
        ("path,start,end\na,3,3\n", DataError, r"events.csv:2: end \(3.0\) must be after start"),
    ],
)
def test_bad_events(tmp_path, text, error, message):
    with pytest.raises(error, match=message):
        read_events(write(tmp_path, text))


def test_missing_or_unreadable_events(tmp_path):
    with pytest.raises(UsageError, match=r"events not found: .*nope.csv"):
        read_events(tmp_path / "nope.csv")
    path = tmp_path / "latin.csv"
    path.write_bytes(b"path,start,end\n\xff\xfe,1,2\n")
    with pytest.raises(UsageError, match=r"cannot read events .*latin.csv"):
        read_events(path)
