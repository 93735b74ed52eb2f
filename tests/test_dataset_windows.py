"""The training window rule, the latent-window dataset and resumable feature extraction."""

import json

import torch

from toolkit.data.dataset import LatentWindows
from toolkit.data.windows import choose_window
from toolkit.training.rng import keyed_generator

FR = 44100 / 2048  # upstream frame rate


def test_window_shifts_lines_and_sets_start_time():
    lines = [(1.0, [5]), (10.0, [6]), (30.0, [7]), (200.0, [8])]
    for step in range(20):
        w = choose_window(3000, 2048, lines, FR, keyed_generator(0, step))
        assert 0 <= w.start <= 3000 - 2048 and w.frames == 2048
        assert w.start_time == w.start / 3000
        offset = w.start / FR
        expected = [(t - offset, tok) for t, tok in lines if 0 <= t - offset < 2048 / FR]
        assert w.lines == expected


def test_short_song_is_whole_and_unlyrical_songs_are_kept():
    w = choose_window(100, 2048, [], FR, keyed_generator(0, 0))
    assert (w.start, w.frames, w.lines, w.start_time) == (0, 100, [], 0.0)


def test_end_at_last_line_is_upstreams_base_rule():
    lines = [(0.5, [5]), (2.0, [6]), (3.0, [7])]
    w = choose_window(100, 2048, lines, FR, keyed_generator(0, 0), end_at_last_line=True)
    assert w.frames == int(3.0 * FR) and w.lines == lines[:2]


def make_features(tmp_path, n=3, frames=(90, 40, 70)):
    entries = []
    for i in range(n):
        song = {"id": f"s{i}", "latent": torch.randn(frames[i], 4), "frame_rate": 10.0,
                "line_times": [0.5, 3.0], "line_tokens": [[10, 11], [12]], "style": torch.randn(512), "tags": {}}
        torch.save(song, tmp_path / f"s{i}.pt")
        entries.append({"id": f"s{i}", "path": f"/nowhere/s{i}.wav"})
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    return tmp_path


def test_dataset_items_depend_only_on_their_key(tmp_path):
    ds = LatentWindows(str(make_features(tmp_path)), "train", max_frames=50, seed=3)
    assert ds.lengths == [50, 40, 50]
    a, b = ds[(0, 7, 2)], ds[(0, 7, 2)]
    assert torch.equal(a["latent"], b["latent"]) and torch.equal(a["lyrics"], b["lyrics"])
    starts = {float(ds[(0, s, 0)]["start_time"]) for s in range(12)}
    assert len(starts) > 1, "different steps draw different windows"
    item = ds[(1, 0, 0)]  # 40 frames < max_frames: the whole song, lyrics placed by the upstream rule
    assert item["lyrics"][5:8].tolist() == [10, 11, 2] and item["lyrics"][30:32].tolist() == [12, 2]
    batch = LatentWindows.collate([ds[(0, 0, 0)], ds[(1, 0, 1)]])
    assert batch["latent"].shape == (2, 50, 4) and batch["lens"].tolist() == [50, 40]
    assert batch["lyrics"][1, 40:].eq(0).all() and batch["sample_index"].tolist() == [0, 1]


def test_missing_features_name_the_stage(tmp_path):
    make_features(tmp_path)
    (tmp_path / "s1.pt").unlink()
    try:
        LatentWindows(str(tmp_path), "train")
    except FileNotFoundError as err:
        assert "run the extract stage" in str(err) and "s1" in str(err)
    else:
        raise AssertionError("missing features must fail")


def test_extract_is_resumable_and_reports_bad_songs(tmp_path):
    from toolkit.audio import save_audio
    from toolkit.data.extract import extract_all
    from toolkit.models.diffrhythm.recipe import build_frontend

    codec, lyrics, style = build_frontend(
        {"type": "mel", "sample_rate": 8000, "channels": 2, "n_fft": 256, "hop_length": 128, "n_mels": 16},
        {"type": "lyrics_lrc", "language": "en"}, "style_tags", 64)
    save_audio(tmp_path / "a.wav", 0.3 * torch.randn(2, 8000), 8000)
    (tmp_path / "bad.wav").write_text("not audio")
    entries = [{"id": "a", "path": str(tmp_path / "a.wav"), "lyrics": "[00:00.10]hello there", "tags": ["folk"]},
               {"id": "bad", "path": str(tmp_path / "bad.wav"), "tags": []}]
    out = tmp_path / "features"
    report = extract_all(entries, out, codec, lyrics, style, style_source="tags", progress=False)
    assert report.done == ["a"] and set(report.failed) == {"bad"}
    feats = torch.load(out / "a.pt", weights_only=True)
    assert feats["latent"].shape[1] == 32 and feats["line_times"] == [0.1] and len(feats["line_tokens"][0]) > 3
    again = extract_all(entries[:1], out, codec, lyrics, style, style_source="tags", progress=False)
    assert again.skipped == ["a"] and again.done == []


def test_a_song_without_features_is_named_with_the_fix(tmp_path):
    import pytest

    from toolkit.models.f5tts.dataset import SpeechUtterances

    (tmp_path / "train.jsonl").write_text(json.dumps({"id": "lost", "path": "/songs/lost.flac"}) + "\n")
    for dataset, what in ((LatentWindows, "song"), (SpeechUtterances, "utterance")):
        with pytest.raises(FileNotFoundError, match=rf"1 {what}\(s\) of .*train.jsonl have no features .*'lost'.*"
                                                   r"run the extract stage first"):
            dataset(str(tmp_path), split="train")
    with pytest.raises(FileNotFoundError, match="valid.jsonl.*run the data stage first"):
        LatentWindows(str(tmp_path), split="valid")
