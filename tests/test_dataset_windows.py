"""The training window, the condition-generic dataset, and stamped, resumable feature extraction."""

import json

import pytest
import torch
from tiny_recipes import MEL_8K, song_conditions

from toolkit.conditions import ConditionSet, Span
from toolkit.data.dataset import LatentWindows
from toolkit.data.extract import Extractor, extract_all
from toolkit.data.windows import choose_window
from toolkit.training.rng import keyed_generator

FR = 44100 / 2048  # upstream frame rate


def conditions(frame_rate=10.0, max_frames=50, **lyrics):
    node = song_conditions()
    node["lyrics"]["conditioner"].update(lyrics)
    codec = type("Geometry", (), {"frame_rate": frame_rate, "sample_rate": 8000, "latent_dim": 4})
    return ConditionSet.for_codec(node, codec, max_frames)


def test_window_is_a_keyed_random_crop():
    starts = set()
    for step in range(20):
        w = choose_window(3000, 2048, FR, keyed_generator(0, step))
        assert 0 <= w.start <= 3000 - 2048 and w.frames == 2048 and w.total == 3000
        starts.add(w.start)
    assert len(starts) > 1
    assert choose_window(100, 2048, FR, keyed_generator(0, 0)) == Span(0, 100, 100, FR, 2048)
    assert choose_window(3000, 2048, FR, keyed_generator(0, 3), mode="start").start == 0


def test_lyrics_and_start_time_follow_the_window():
    conds = conditions(frame_rate=FR, max_frames=2048)
    lines = [(1.0, [5]), (10.0, [6]), (30.0, [7]), (200.0, [8])]
    span = Span(600, 2048, 3000, FR, 2048)
    tokens = conds["lyrics"].crop(lines, span)
    offset = 600 / FR
    for t, tok in lines:
        if 0 <= t - offset < 2048 / FR:  # shifted into the window, placed with a period
            start = int((t - offset) * FR)
            assert tokens[start:start + 2].tolist() == [tok[0], 2]
    assert int((tokens > 0).sum()) == 2 * sum(1 for t, _ in lines if 0 <= t - offset < 2048 / FR)
    assert conds["start_time"].crop(None, span) == torch.tensor(600 / 3000, dtype=torch.float32)


def test_end_at_last_line_is_upstreams_base_rule():
    conds = conditions(frame_rate=FR, max_frames=2048, end_at_last_line=True)
    lines = [(0.5, [5]), (2.0, [6]), (3.0, [7])]
    span = conds["lyrics"].limit_window(lines, Span(0, 100, 100, FR, 2048))
    assert span.frames == int(3.0 * FR)
    tokens = conds["lyrics"].crop(lines, span)
    assert 7 not in tokens.tolist() and 6 in tokens.tolist()


def make_features(tmp_path, conds, n=3, frames=(90, 40, 70)):
    entries = []
    for i in range(n):
        song = {"format": 2, "id": f"s{i}", "latent": torch.randn(frames[i], 4), "frame_rate": 10.0,
                "conditions": {"lyrics": [(0.5, [10, 11]), (3.0, [12])], "style": conds["style"].prepare("folk"),
                               "start_time": None}, "stamps": {}}
        torch.save(song, tmp_path / f"s{i}.pt")
        entries.append({"id": f"s{i}", "path": f"/nowhere/s{i}.wav"})
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    return tmp_path


def test_dataset_items_depend_only_on_their_key(tmp_path):
    conds = conditions()
    ds = LatentWindows(str(make_features(tmp_path, conds)), conds, "train", max_frames=50, seed=3)
    assert ds.lengths == [50, 40, 50]
    a, b = ds[(0, 7, 2)], ds[(0, 7, 2)]
    assert torch.equal(a["latent"], b["latent"]) and torch.equal(a["conditions"]["lyrics"], b["conditions"]["lyrics"])
    starts = {float(ds[(0, s, 0)]["conditions"]["start_time"]) for s in range(12)}
    assert len(starts) > 1, "different steps draw different windows"
    item = ds[(1, 0, 0)]  # 40 frames < max_frames: the whole song, lyrics placed by the upstream rule
    assert item["conditions"]["lyrics"][5:8].tolist() == [10, 11, 2]
    assert item["conditions"]["lyrics"][30:32].tolist() == [12, 2]
    batch = ds.collate([ds[(0, 0, 0)], ds[(1, 0, 1)]])
    assert batch["latent"].shape == (2, 50, 4) and batch["lens"].tolist() == [50, 40]
    assert batch["conditions"]["lyrics"].shape == (2, 50) and batch["conditions"]["lyrics"][1, 40:].eq(0).all()
    assert batch["conditions"]["style"].shape == (2, conds["style"].vocab_size)
    assert batch["sample_index"].tolist() == [0, 1]


def test_required_conditions_leave_out_songs_without_them(tmp_path):
    conds = conditions()
    make_features(tmp_path, conds)
    song = torch.load(tmp_path / "s1.pt", weights_only=True)
    song["conditions"]["lyrics"] = []
    torch.save(song, tmp_path / "s1.pt")
    assert len(LatentWindows(str(tmp_path), conds, "train")) == 3
    assert len(LatentWindows(str(tmp_path), conds, "train", require=["lyrics"])) == 2
    with pytest.raises(ValueError, match="not conditions"):
        LatentWindows(str(tmp_path), conds, "train", require=["text"])


def test_a_song_without_features_is_named_with_the_fix(tmp_path):
    conds = conditions()
    (tmp_path / "train.jsonl").write_text(json.dumps({"id": "lost", "path": "/songs/lost.flac"}) + "\n")
    with pytest.raises(FileNotFoundError, match=r"1 song\(s\) of .*train.jsonl have no features .*'lost'.*"
                                               r"run the extract stage first"):
        LatentWindows(str(tmp_path), conds, split="train")
    with pytest.raises(FileNotFoundError, match="valid.jsonl.*run the data stage first"):
        LatentWindows(str(tmp_path), conds, split="valid")


def songs(tmp_path):
    from toolkit.audio import save_audio

    save_audio(tmp_path / "a.wav", 0.3 * torch.randn(2, 8000), 8000)
    (tmp_path / "bad.wav").write_text("not audio")
    return [{"id": "a", "path": str(tmp_path / "a.wav"), "lyrics": "[00:00.10]hello there", "tags": ["folk"]},
            {"id": "bad", "path": str(tmp_path / "bad.wav"), "tags": []}]


def test_extract_is_resumable_and_reports_bad_songs(tmp_path):
    entries = songs(tmp_path)
    out = tmp_path / "features"
    extractor = Extractor(MEL_8K, song_conditions(), 64)
    report = extract_all(entries, out, extractor, progress=False)
    assert report.done == ["a"] and set(report.failed) == {"bad"}
    feats = torch.load(out / "a.pt", weights_only=True)
    assert feats["latent"].shape[1] == 32 and feats["stamps"] == extractor.stamps
    (t, tokens), = feats["conditions"]["lyrics"]
    assert t == 0.1 and len(tokens) > 3
    assert feats["conditions"]["style"].shape == (extractor.conditions["style"].vocab_size,)
    again = extract_all(entries[:1], out, Extractor(MEL_8K, song_conditions(), 64), progress=False)
    assert again.skipped == ["a"] and again.done == [] and not again.remade
    assert json.loads((out / "stamps.json").read_text()) == extractor.stamps


def test_a_changed_setting_re_extracts_only_what_it_changes(tmp_path, caplog):
    entries = songs(tmp_path)[:1]
    out = tmp_path / "features"
    extract_all(entries, out, Extractor(MEL_8K, song_conditions(), 64), progress=False)
    first = torch.load(out / "a.pt", weights_only=True)

    features_style = song_conditions(style="style_features")
    report = extract_all(entries, out, Extractor(MEL_8K, features_style, 64), progress=False)
    assert report.remade == {"style": 1} and report.done == ["a"]
    second = torch.load(out / "a.pt", weights_only=True)
    assert torch.equal(second["latent"], first["latent"]), "the latent is kept: the codec did not change"
    assert second["conditions"]["style"].shape == (512,) and second["conditions"]["lyrics"] == first["conditions"][
        "lyrics"]

    with caplog.at_level("WARNING", logger="toolkit.data.extract"):
        report = extract_all(entries, out, Extractor({**MEL_8K, "n_mels": 24}, features_style, 64), progress=False)
    assert set(report.remade) == {"latent", "lyrics", "style", "start_time"}, "a new codec changes every part"
    assert torch.load(out / "a.pt", weights_only=True)["latent"].shape[1] == 48
    assert "settings of the codec changed" in caplog.text
