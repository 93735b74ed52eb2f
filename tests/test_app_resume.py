"""Web app jobs survive a crash: the folder keeps the request, copies of its files and the sampler's state; the
job is listed as unfinished and resumes into the song the first run would have made."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from test_generate_fixtures import LRC, make_checkpoint, write_tone

from toolkit.app.served import Settings, serve_checkpoint
from toolkit.app.service import Service
from toolkit.app.unfinished import JOB_FILE

STEPS = 8


class PowerCut(Exception):
    """Stands for the server dying mid-song (a bug, a kill, a closed lid)."""


def crash_at(update):
    def report(stage, done, total):
        if stage == "sampling" and done == update:
            raise PowerCut(f"power cut at update {done}")
    return report


@pytest.fixture
def env(tmp_path):
    settings = Settings(torch.device("cpu"), "fp32", torch.float32, save_state_every=0)
    service = Service([serve_checkpoint(make_checkpoint(tmp_path / "song.pt"), settings=settings)],
                      tmp_path / "out", settings, pictures=False)
    (tmp_path / "upload").mkdir()
    upload = write_tone(tmp_path / "upload" / "mine.wav", seconds=1.2)
    data = {"lrc": LRC, "style_text": "folk", "ref_song": str(upload), "segments": [[0.2, 0.8]], "seed": 5,
            "steps": STEPS, "title": "night"}
    return service, next(iter(service.models)), data, upload


def test_a_crashed_job_is_listed_and_resumes_into_the_uninterrupted_song(env, capsys):
    service, label, data, upload = env
    crashed = service.generate(label, data, "page", progress=crash_at(3))
    assert not crashed.ok and "PowerCut: power cut at update 3" in crashed.message
    folder = crashed.folder
    assert f"the job is kept: resume {folder.name} under Unfinished jobs" in crashed.message
    upload.unlink()  # the upload's temporary folder is gone after a restart: the job has its own copy

    [job] = service.unfinished()
    assert job.folder == folder and job.model == label and job.request["seed"] == 5 and job.total == STEPS
    assert 2 <= job.done <= 3, job.done  # the state of the last update before the crash
    assert job.describe() == f"{folder.name}: night ({label}; update {job.done} of {STEPS} saved)"
    assert job.recipe == "diffrhythm" and service.unfinished("f5tts") == []

    capsys.readouterr()
    resumed = service.resume(folder.name, "page")
    assert f"resuming from update {job.done} of {STEPS} saved in" in capsys.readouterr().err  # not from noise
    assert resumed.ok and resumed.message.startswith("resumed: 1 output(s)"), resumed.message
    assert resumed.folder == folder and [i.audio.name for i in resumed.items] == ["night.wav"]
    assert sorted(p.name for p in folder.iterdir()) == ["inputs", "night.json", "night.wav"]  # state and job gone
    assert service.unfinished() == []
    manifest = json.loads((folder / "night.json").read_text())
    assert manifest["request"]["ref_song"] == str(folder / "inputs" / "ref_song" / "mine.wav")

    write_tone(upload, seconds=1.2)  # the same request from the start, never interrupted
    whole = service.generate(label, data, "page")
    assert whole.ok and whole.folder != folder
    assert np.array_equal(sf.read(resumed.items[0].audio)[0], sf.read(whole.items[0].audio)[0])


def test_resume_refuses_what_it_cannot_finish_and_keeps_it(env):
    service, label, data, _ = env
    assert "is not an unfinished job" in service.resume("20260101-000000-job0001", "page").message
    folder = service.generate(label, data, "page", progress=crash_at(2)).folder
    record = json.loads((folder / JOB_FILE).read_text())
    (folder / JOB_FILE).write_text(json.dumps({**record, "model": "gone.pt"}))
    assert [j.name for j in service.unfinished("diffrhythm")] == [folder.name]  # listed, though not servable
    refused = service.resume(folder.name, "page")
    assert not refused.ok and refused.message == (f"{folder.name} was made with gone.pt, which this server does not "
                                                  "serve: start toolkit-app with that model (--ckpt FILE or "
                                                  "--pretrained DIR) to resume it")
    assert (folder / JOB_FILE).is_file() and list(folder.glob("*.partial.pt")), "a refused resume loses nothing"
    (folder / JOB_FILE).write_text("{torn")
    assert service.unfinished() == []  # a torn record is logged, not listed
    assert "is not a readable job record" in service.resume(folder.name, "page").message


def test_a_cancelled_or_refused_job_leaves_no_folder(env):
    service, label, data, _ = env
    assert not service.generate(label, {**data, "segments": [[0.8, 0.2]]}, "page").ok  # refused by validation

    def cancel_at_two(stage, done, total):
        if stage == "sampling" and done == 2:
            service.cancel("page")

    cancelled = service.generate(label, data, "page", progress=cancel_at_two)
    assert cancelled.message == "cancelled: nothing was written"
    assert not (service.out_root.exists() and any(service.out_root.iterdir()))


def test_a_job_running_now_is_not_listed_nor_resumed_twice(env):
    service, label, data, _ = env
    folder = service.generate(label, data, "page", progress=crash_at(2)).folder
    seen = {}

    def look(stage, done, total):  # while the resume runs, from "another page"
        if stage == "sampling" and "listed" not in seen:
            seen["listed"] = [j.name for j in service.unfinished()]
            seen["again"] = service.resume(folder.name, "other page").message

    assert service.resume(folder.name, "page", progress=look).ok
    assert seen == {"listed": [], "again": f"{folder.name} is running now"}
