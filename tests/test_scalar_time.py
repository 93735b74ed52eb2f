"""scalar_time: start time / duration scalars as upstream DiffRhythm computes them."""

import pytest
import torch

from toolkit.conditioners.scalar_time import ScalarTime, TimeConditionError
from toolkit.protocols import OUT_SCALAR
from toolkit.registry import CONDITIONERS

FRAME_RATE = 44100 / 2048  # DiffRhythm's VAE: 21.533 frames per second


def test_build_and_contract():
    start = CONDITIONERS.build("scalar_time", frame_rate=FRAME_RATE)
    dur = CONDITIONERS.build({"type": "scalar_time", "kind": "duration", "max_frames": 6144}, frame_rate=FRAME_RATE)
    assert start.output_kind == OUT_SCALAR == dur.output_kind
    assert start.null(3).shape == (3,) and not start.null(3).any()
    batch = torch.stack([start.prepare(0.0), start.prepare(10.0, num_frames=4000)])
    assert start(batch).shape == (2,)
    with pytest.raises(TimeConditionError, match=r"\[B\]"):
        start(batch[:, None])
    with pytest.raises(ValueError, match="kind must be one of"):
        ScalarTime("tempo")


def test_duration_matches_upstream_frames():
    dur = ScalarTime("duration", max_frames=6144, frame_rate=FRAME_RATE)
    # upstream end_frame = int(seconds * 44100 / 2048): 285 s -> 6136, 120 s -> 2583
    assert dur.prepare(285).item() == pytest.approx(6136 / 6144)
    assert dur.prepare(120.0).item() == pytest.approx(2583 / 6144)
    assert dur.prepare(60, num_frames=2048).item() == pytest.approx(1291 / 2048)  # another window (base model)
    assert dur.prepare({"frames": 3072}).item() == 0.5
    with pytest.raises(TimeConditionError, match="longer than the model's window of 6144 frames \\(285.3 s\\)"):
        dur.prepare(300)
    with pytest.raises(TimeConditionError, match="max_frames"):
        ScalarTime("duration", frame_rate=FRAME_RATE).prepare(10)


def test_start_time_is_start_frame_over_song_frames():
    start = ScalarTime("start_time", frame_rate=FRAME_RATE)
    assert start.prepare(None).item() == 0.0  # inference default, needs no song length
    assert start.prepare(0).item() == 0.0
    total = 5000
    for start_frame in (1, 7, 15, 23, 1234, 2047, 2952):  # 15 and 23 floor to one less without the 1e-6
        # the data pipeline stores seconds = start_frame * 2048 / 44100; they must map back to the frame
        seconds = start_frame * 2048 / 44100
        value = start.prepare(seconds, num_frames=total)
        assert value.dtype == torch.float32
        assert value.item() == pytest.approx(start_frame / total, abs=1e-7)
        assert start.to_frame(seconds) == start_frame
    assert start.prepare({"seconds": 1.0}, num_frames=100).item() == pytest.approx(21 / 100)  # floor(21.53)


def test_start_time_errors():
    start = ScalarTime("start_time", frame_rate=FRAME_RATE)
    with pytest.raises(TimeConditionError, match="num_frames"):
        start.prepare(3.0)
    with pytest.raises(TimeConditionError, match="not inside the song"):
        start.prepare(100.0, num_frames=2000)
    with pytest.raises(TimeConditionError, match="non-negative"):
        start.prepare(-1.0, num_frames=2000)
    with pytest.raises(TimeConditionError, match="frame_rate"):
        ScalarTime("start_time").prepare(3.0, num_frames=2000)
