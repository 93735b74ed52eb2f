"""The web app driven in-process through its HTTP API (gradio_client), on tiny checkpoints: the Song tab (a bad
LRC's message, the line-by-line view, time evenly, a batch with its files), the Edit tab, the Speech tab, a tab for
a recipe the app has never heard of, the Compare tab, cancellation, two pages' jobs at once, bad input without a
traceback, offline pages, and the non-loopback warning."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from gradio_client import Client, handle_file
from test_f5tts_recipe import speech, tiny_config
from test_generate_fixtures import LRC, make_checkpoint, run, write_tone

from toolkit.app.served import Settings, serve_checkpoint
from toolkit.app.server import exposure_warning, free_port, is_loopback, launch
from toolkit.app.service import Service

SONG, EDIT, SPEECH = "diffrhythm_main", "diffrhythm_edit", "f5tts_main"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("app")
    settings = Settings(torch.device("cpu"), "fp32", torch.float32)
    models = [serve_checkpoint(make_checkpoint(root / "song.pt"), settings=settings),
              serve_checkpoint(make_checkpoint(root / "song_b.pt", seed=1), settings=settings),
              serve_checkpoint(make_checkpoint(root / "speech.pt", config=tiny_config()), settings=settings)]
    service = Service(models, root / "out", settings)
    running = launch(service, port=free_port(), block=False)
    yield running, service, root
    running.close()


@pytest.fixture(scope="module")
def client(app):
    return Client(app[0].url, verbose=False)


def tab(app, name):
    return app[0].blocks.toolkit_tabs[name]


def call(client, app, name, values, endpoint="generate", fmt="wav", chosen=None, model=None, **kwargs):
    args = tab(app, name).arguments(values, chosen=chosen, model=model)
    if endpoint == "generate":
        args.append(fmt)
    return client.predict(*args, api_name=f"/{name}_{endpoint}", **kwargs)


def outputs(result):
    """(status, [(audio, picture, files)]) of a generate call."""
    status, rest = result[0], [r for r in result[1:] if isinstance(r, dict)]
    slots = [rest[i:i + 3] for i in range(0, len(rest), 3)]
    return status, [(a["value"], p["value"], f["value"]) for a, p, f in slots if a.get("visible")]


# ----------------------------------------------------------------------------------------------- song tab
def test_a_bad_lrc_gets_the_clis_message_in_the_page(app, client, tmp_path, capsys):
    lrc = "[00:00.05]hello world\n[00:61.00]a typo in the seconds\n"
    status, lines = call(client, app, SONG, {"lrc": lrc, "style_text": "folk"}, endpoint="check")
    (tmp_path / "bad.lrc").write_text(lrc)
    code, err = run(["--ckpt", app[2] / "song.pt", "--lrc", tmp_path / "bad.lrc", "--style-text", "folk",
                     "--out", tmp_path / "out"], capsys)
    cli_message = err.strip().split("error: ", 1)[1]
    assert code == 2 and "seconds must be below 60" in cli_message
    assert "Error:" in status and cli_message in status and "Traceback" not in status
    assert "tk-error" in lines and "seconds must be below 60" in lines  # beside line 2


def test_the_line_view_says_what_happens_to_each_line(app, client):
    lrc = ("[00:00.05]hello world\n[00:00.50]second line\n[00:00.30]out of order\n[00:00.60]!!! ???\n"
           "[00:05.00]after the end\n")
    status, lines = call(client, app, SONG, {"lrc": lrc, "style_text": "folk", "length": "1.2"}, endpoint="check")
    assert "Ready" in status and "lyric line(s) start after the end" in status  # the validator's warnings
    rows = lines.split("<tr ")[1:]
    assert len(rows) == 5
    assert "sung" in rows[0] and "tk-ok" in rows[0]
    assert "out of order" in rows[2] and "tk-warning" in rows[2]
    assert "not voiceable" in rows[3] and "tk-warning" in rows[3]
    assert "after the end" in rows[4] and "1.2 s song" in rows[4]


def test_every_line_after_the_end_is_an_error_with_the_lines_marked(app, client):
    status, lines = call(client, app, SONG, {"lrc": "[00:03.00]too late\n", "style_text": "folk"}, endpoint="check")
    assert "Error:" in status and "every lyric line starts after the end" in status
    assert "after the end" in lines


def test_time_evenly_fills_the_lrc_editor(app, client):
    result = call(client, app, SONG, {"lyrics": "first line\n[Chorus]\nsecond line", "style_text": "folk",
                                      "length": "1.0"}, endpoint="lyrics_fill", chosen={"lyrics (one of)": "lyrics"})
    lrc, choice, status = result
    assert lrc == "[00:00.00]first line\n[00:00.50]second line\n"
    assert choice == "lrc" and "timed" in status


def test_song_batch_each_item_with_its_manifest_and_spectrogram(app, client):
    status, items = outputs(call(client, app, SONG, {"lrc": LRC, "style_text": "folk", "length": "1.2",
                                                     "batch": 2, "seed": "7", "title": "two takes"}))
    assert "2 output(s)" in status and "seed 7" in status
    assert len(items) == 2
    for i, (audio, picture, files) in enumerate(items):
        wav, sr = sf.read(audio)
        assert abs(len(wav) / sr - 1.2) < 0.02 and np.abs(wav).max() > 1e-3
        assert picture.endswith(".png") and Path(picture).stat().st_size > 1000
        manifest = json.loads(Path(next(f for f in files if f.endswith(".json"))).read_text())
        assert manifest["seed"] == 7 + i and manifest["batch_index"] == i
        assert manifest["request"]["title"] == "two takes" and manifest["request"]["length"] == 1.2
    assert not np.allclose(sf.read(items[0][0])[0], sf.read(items[1][0])[0])


def test_the_model_picker_runs_the_picked_model(app, client):
    config = app[0].blocks.get_config_file()
    picker = next(c for c in config["components"] if c["props"].get("elem_id") == f"{SONG}-model")
    labels = [c[0] for c in picker["props"]["choices"]]
    assert [Path(label.split(" ")[0]).name for label in labels] == ["song.pt", "song_b.pt"]
    assert picker["props"]["interactive"] is True
    values = {"lrc": LRC, "style_text": "folk", "seed": "2"}
    takes = []
    for label in labels:
        status, items = outputs(call(client, app, SONG, values, model=label))
        manifest = json.loads(Path(next(f for f in items[0][2] if f.endswith(".json"))).read_text())
        assert manifest["checkpoint"]["path"] == str(Path(label.split(" ")[0]).resolve())
        takes.append(sf.read(items[0][0])[0])
    assert not np.allclose(takes[0], takes[1])  # two models, same seed: two songs


def test_instrumental_and_flac(app, client):
    status, items = outputs(call(client, app, SONG, {"style_text": "folk", "seed": "1"}, fmt="flac",
                                 chosen={"lyrics (one of)": "instrumental"}))
    assert "1 output(s)" in status and items[0][0].endswith(".flac")
    manifest = json.loads(Path(next(f for f in items[0][2] if f.endswith(".json"))).read_text())
    assert manifest["request"]["instrumental"] is True and manifest["lrc"] is None


# ------------------------------------------------------------------------------------------ other tabs
def test_edit_tab_regenerates_the_spans_of_an_uploaded_song(app, client, tmp_path):
    song = write_tone(tmp_path / "ref.wav", seconds=1.2)
    values = {"lrc": LRC, "style_text": "folk", "ref_song": handle_file(str(song)), "segments": "0.4:0.8",
              "seed": "3"}
    status, items = outputs(call(client, app, EDIT, values))
    assert "1 output(s)" in status, status
    wav, sr = sf.read(items[0][0])
    ref, _ = sf.read(song)
    assert abs(len(wav) - len(ref)) <= 64 * 2  # the reference's length (to a frame)
    manifest = json.loads(Path(next(f for f in items[0][2] if f.endswith(".json"))).read_text())
    assert manifest["request"]["segments"] == [[0.4, 0.8]]
    bad = call(client, app, EDIT, {**values, "segments": "0.4-0.8"}, endpoint="check")[0]
    assert "Error:" in bad and "give spans in seconds" in bad
    both = call(client, app, EDIT, {**values, "continue_seconds": "0.3"}, endpoint="check")[0]
    assert "edit segments and continuation are separate modes" in both
    status, items = outputs(call(client, app, EDIT, {**values, "segments": "", "continue_seconds": "0.3"}))
    assert "1 output(s)" in status, status
    wav, sr = sf.read(items[0][0])
    assert abs(len(wav) / sr - 1.5) < 0.02  # the song and 0.3 s after it


def test_speech_tab_clones_the_reference_voice(app, client, tmp_path):
    ref = speech(tmp_path / "ref.wav", seconds=1.0)
    values = {"text": "hello there", "ref_audio": handle_file(ref), "ref_text": "a short clip", "seed": "1"}
    status, items = outputs(call(client, app, SPEECH, values))
    assert "1 output(s)" in status, status
    wav, _ = sf.read(items[0][0])
    assert len(wav) > 0 and np.abs(wav).max() > 0
    missing = call(client, app, SPEECH, {**values, "ref_text": ""}, endpoint="check")  # no editor: one output
    assert "a reference clip needs its transcript" in missing


def test_the_page_has_the_tabs_of_its_recipes(app):
    config = app[0].blocks.get_config_file()
    tabs = [c["props"]["label"] for c in config["components"] if c["type"] == "tabitem"]
    assert tabs == ["Song", "Edit", "Speech", "Compare"]
    ids = {c["props"].get("elem_id") for c in config["components"]}
    # the song tab has no edit options; the edit tab has them and the song's; speech has its own
    assert f"{SONG}-lrc" in ids and f"{SONG}-ref_song" not in ids and f"{EDIT}-ref_song" in ids
    assert {f"{SPEECH}-text", f"{SPEECH}-ref_audio", f"{SPEECH}-ref_text"} <= ids


# ---------------------------------------------------------------------------------- running and queueing
def test_cancel_stops_a_long_job_and_writes_nothing(app, client):
    running, service, root = app
    before = set((root / "out").iterdir())
    job = client.submit(*tab(app, SONG).arguments({"lrc": LRC, "style_text": "folk", "steps": "5000"}), "wav",
                        api_name=f"/{SONG}_generate")
    deadline = time.time() + 60
    while not any((p.desc or "").startswith("sampling") for p in job.status().progress_data or []):
        assert time.time() < deadline, "no progress reached the page"
        time.sleep(0.1)
    assert service.board.running() is not None
    started = time.time()
    message = client.predict(api_name=f"/{SONG}_cancel")
    status, items = outputs(job.result(timeout=60))
    assert "Cancelling" in message
    assert "Cancelled" in status and items == []
    assert time.time() - started < 20  # stopped at the next ODE step, not after 5000
    assert set((root / "out").iterdir()) == before  # no folder, no file
    assert service.board.running() is None
    assert "output(s)" in outputs(call(client, app, SONG, {"lrc": LRC, "style_text": "folk"}))[0]  # still serving


def test_a_cancel_from_another_page_does_not_stop_this_one(app, client):
    other = Client(app[0].url, verbose=False)
    assert "No job" in other.predict(api_name=f"/{SONG}_cancel")
    assert "output(s)" in outputs(call(client, app, SONG, {"lrc": LRC, "style_text": "folk"}))[0]


def test_two_pages_jobs_are_queued_and_keep_their_own_outputs(app):
    running, service, root = app
    spans, lock = [], threading.Lock()
    wait_turn, leave = service.board.wait_turn, service.board.leave

    def timed_wait(ticket, waiting=None):
        wait_turn(ticket, waiting)
        with lock:
            spans.append([ticket.number, time.perf_counter(), None])

    def timed_leave(ticket):
        with lock:
            for s in spans:
                if s[0] == ticket.number and s[2] is None:
                    s[2] = time.perf_counter()
        leave(ticket)

    service.board.wait_turn, service.board.leave = timed_wait, timed_leave
    try:
        clients = [Client(running.url, verbose=False) for _ in range(2)]
        jobs = [c.submit(*tab(app, SONG).arguments({"lrc": LRC, "style_text": style, "title": title, "seed": seed,
                                                    "steps": "40"}), "wav", api_name=f"/{SONG}_generate")
                for c, style, title, seed in zip(clients, ("folk", "jazz"), ("first", "second"), ("11", "22"),
                                                 strict=True)]
        results = [outputs(j.result(timeout=300)) for j in jobs]
    finally:
        service.board.wait_turn, service.board.leave = wait_turn, leave
    folders = set()
    for (status, items), title, seed in zip(results, ("first", "second"), (11, 22), strict=True):
        assert "1 output(s)" in status, status
        audio = Path(items[0][0]).name
        manifest_path = Path(next(f for f in items[0][2] if f.endswith(".json")))
        manifest = json.loads(manifest_path.read_text())
        assert audio == f"{title}.wav" and manifest["request"]["title"] == title and manifest["seed"] == seed
        folders.add(next(p for p in (root / "out").rglob(audio)).parent)
    assert len(folders) == 2  # a folder per job
    (a, a0, a1), (b, b0, b1) = sorted(spans, key=lambda s: s[1])
    assert a1 <= b0, "the two jobs ran at the same time"


def test_a_bug_is_one_line_in_the_page_not_a_traceback(app, client, monkeypatch):
    model = next(iter(app[1].models.values()))

    def broken(*_):
        raise RuntimeError("deliberately broken")

    monkeypatch.setattr(model, "built", broken)
    status = outputs(call(client, app, SONG, {"lrc": LRC, "style_text": "folk"}))[0]
    assert "internal error (RuntimeError: deliberately broken)" in status and "server's log" in status
    assert "Traceback" not in status and 'File "' not in status


def test_a_crashed_job_is_listed_and_resumed_from_the_page(app, client):
    running, service, root = app

    def crash(stage, done, total):
        if stage == "sampling" and done == 2:
            raise RuntimeError("the server died")

    label = tab(app, SONG).models[0].label
    crashed = service.generate(label, {"lrc": LRC, "style_text": "folk", "seed": 7, "steps": 4, "title": "lost"},
                               "another page", progress=crash)
    assert not crashed.ok and "under Unfinished jobs" in crashed.message
    listed = client.predict(api_name=f"/{SONG}_unfinished")
    assert listed["value"] == crashed.folder.name  # newest first
    assert [shown.startswith(f"{name}: ") for shown, name in listed["choices"]] == [True] * len(listed["choices"])
    status, items = outputs(client.predict(crashed.folder.name, api_name=f"/{SONG}_resume"))
    assert "resumed: 1 output(s)" in status and str(crashed.folder) in status, status
    assert Path(items[0][0]).name == "lost.wav" and (crashed.folder / "lost.wav").is_file()
    assert crashed.folder.name not in [j.name for j in service.unfinished()]
    nothing = outputs(client.predict(None, api_name=f"/{SONG}_resume"))[0]
    assert "pick an unfinished job first" in nothing


# -------------------------------------------------------------------------------------- compare tab
def fake_report(root: Path) -> Path:
    exp = root / "exp"
    variants = ["euler_8", "midpoint_8"]
    for v, amplitude in zip(variants, (0.2, 0.4), strict=True):
        folder = exp / "songs" / v
        folder.mkdir(parents=True)
        for request in ("req_0", "req_1"):
            write_tone(folder / f"{request}.wav", seconds=0.5, amplitude=amplitude)
            (folder / f"{request}.json").write_text(json.dumps({"audio": f"{request}.wav", "config": {}}))
    (exp / "report").mkdir()
    rows = [{"name": v, "steps": 8, "solver": v.split("_")[0], "frechet": 1.5 + i} for i, v in enumerate(variants)]
    (exp / "report" / "report.json").write_text(json.dumps({"kind": "compare", "variants": rows}))
    return exp / "report"


def test_compare_tab_lists_the_variants_and_plays_one_request_across_them(app, client, tmp_path):
    report = fake_report(tmp_path)
    status, table, request, *players = client.predict(str(report.parent), api_name="/compare_open")
    assert "2 variants, 2 requests" in status
    assert "euler_8" in table and "midpoint_8" in table and "midpoint" in table
    assert request["value"] == "req_0" and [c[0] for c in request["choices"]] == ["req_0", "req_1"]
    shown = [p for p in players if p.get("visible")]
    assert [p["label"] for p in shown] == ["euler_8", "midpoint_8"]
    peaks = [np.abs(sf.read(p["value"])[0]).max() for p in shown]
    assert peaks[1] > 1.5 * peaks[0]  # each variant's own audio
    again = client.predict(str(report), "req_1", api_name="/compare_listen")
    assert sum(1 for p in again if p.get("visible")) == 2
    missing = client.predict(str(tmp_path / "nothing"), api_name="/compare_open")[0]
    assert "Error:" in missing and "no comparison report here" in missing


# ------------------------------------------------------------------------------- serving, offline, warning
def test_the_page_loads_nothing_from_other_hosts(app):
    page = urllib.request.urlopen(app[0].url, timeout=30).read().decode()
    assert "gradio_config" in page
    for host in ("fonts.googleapis", "fonts.gstatic", "cdnjs.cloudflare", "huggingface.co/api"):
        assert host not in page, host
    import gradio

    index = (Path(gradio.__file__).parent / "templates" / "frontend" / "index.html").read_text()
    assert "cdnjs.cloudflare" in index  # what the middleware removes is really in Gradio's page
    import os

    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False" and os.environ["HF_HUB_OFFLINE"] == "1"


def test_non_loopback_addresses_are_warned_about(capsys, app):
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert exposure_warning("127.0.0.1") is None
    assert "every network interface" in exposure_warning("0.0.0.0")
    assert "anyone who can reach it" in exposure_warning("192.0.2.10")
    from toolkit.bin.app import main

    assert main(["--ckpt", str(app[2] / "song.pt"), "--host", "0.0.0.0", "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "toolkit-app: warning: listening on every network interface" in err and "not started" in err
    assert main(["--ckpt", str(app[2] / "song.pt"), "--dry-run"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_the_cli_refuses_bad_arguments_in_one_line(capsys, app, tmp_path):
    from toolkit.bin.app import main

    assert main([]) == 2 and "give at least one model" in capsys.readouterr().err
    assert main(["--ckpt", str(tmp_path / "missing.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    port = int(app[0].url.rsplit(":", 1)[1].strip("/"))
    assert main(["--ckpt", str(app[2] / "song.pt"), "--port", str(port)]) == 2
    assert "is another app using it" in capsys.readouterr().err


def test_plain_lyrics_show_the_lines_as_timed(app, client):
    values = {"lrc": "[00:00.05]a stale line in the LRC editor", "lyrics": "first line\nsecond line",
              "style_text": "folk", "length": "1.0"}
    status, lines = call(client, app, SONG, values, endpoint="check", chosen={"lyrics (one of)": "lyrics"})
    assert "Ready" in status
    assert "Lines as timed" in lines and "stale" not in lines
    assert "[00:00.00]first line" in lines and "[00:00.50]second line" in lines
