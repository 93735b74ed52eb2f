"""benchmarks/study_sampling.py on a folder laid out like the published downloads (tiny sizes): the study a
user with the published weights runs to decide the sampling defaults loads them as `--pretrained` does."""

import json
import runpy
import sys
from pathlib import Path

import pytest
import torch
from test_generate_pretrained import LRC, build_published_folder

STUDY = Path(__file__).resolve().parents[1] / "benchmarks" / "study_sampling.py"


def study(monkeypatch, capsys, *argv):
    monkeypatch.setattr(sys, "argv", [str(STUDY), *map(str, argv), "--threads", str(torch.get_num_threads())])
    runpy.run_path(str(STUDY), run_name="__main__")
    return capsys.readouterr()


def test_published_folder_is_studied_row_by_row(tmp_path, monkeypatch, capsys):
    folder = build_published_folder(tmp_path)
    (folder / "song.lrc").write_text(LRC, encoding="utf-8")
    out = study(monkeypatch, capsys, "--pretrained", folder, "--variant", "base", "--lrc", folder / "song.lrc",
                "--style-text", "folk", "--seconds", "0.1", "--items", "2", "--reference-steps", "16").out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("# "))
    assert header.startswith("# published model (") and "cfm_model.pt" in header and "cfg 4.0" in header
    rows = {r["setting"]: r for r in (json.loads(line) for line in lines if line.startswith("{"))}
    assert len(rows) == 22
    # NFE as the sampler counts it: a guided evaluation is two, midpoint two per update, dpmpp one
    assert rows["upstream: euler 31, linspace"]["nfe"] == 62 and rows["midpoint 8, sway -1"]["nfe"] == 32
    assert rows["dpmpp 16, sway -1"]["nfe"] == 32 and rows["dpmpp 31, linspace"]["nfe"] == 62
    assert 31 < rows["euler 31, guidance t in [0, 0.8]"]["nfe"] < 62
    # the int8 row runs upstream's grid on int8 blocks: the same evaluations, a different result
    int8, upstream = rows["euler 31, int8 dynamic blocks"], rows["upstream: euler 31, linspace"]
    assert int8["nfe"] == 62 and int8["error"] != upstream["error"]
    # every row integrates the same noise and conditions: the row that repeats the reference's setting lands on it
    assert rows["midpoint 16, linspace"]["error"] == 0.0
    assert all(r["error"] > 0 for name, r in rows.items() if name != "midpoint 16, linspace")
    # the verdict names exactly the settings at most as far off as upstream's with fewer evaluations
    verdict = next(line for line in lines if line.startswith("# ") and "evaluations" in line)
    upstream = rows["upstream: euler 31, linspace"]
    candidates = {n for n, r in rows.items() if r["nfe"] < upstream["nfe"] and r["error"] <= upstream["error"]}
    assert "midpoint 16, linspace" not in candidates  # 64 evaluations are not fewer than 62, exact as it is
    assert {n for n in rows if f"{n} (NFE" in verdict} == candidates
    assert ("keep upstream's defaults" in verdict) == (not candidates)


def test_a_folder_the_generate_cli_refuses_is_refused_with_its_reason(tmp_path, monkeypatch, capsys):
    folder = build_published_folder(tmp_path)
    (folder / "song.lrc").write_text(LRC, encoding="utf-8")
    with pytest.raises(SystemExit) as err:  # base and v1.0 full have the same keys: the user must say which
        study(monkeypatch, capsys, "--pretrained", folder, "--lrc", folder / "song.lrc", "--style-text", "folk")
    assert err.value.code == 2 and "--variant base or --variant full" in capsys.readouterr().err


def test_one_model_source_is_required(monkeypatch, capsys):
    with pytest.raises(SystemExit) as err:
        study(monkeypatch, capsys, "--ckpt", "a.pt", "--pretrained", "dir", "--lrc", "x.lrc")
    assert err.value.code == 2
    assert "one of --ckpt FILE / --pretrained DIR" in capsys.readouterr().err


def test_a_distilled_student_is_studied_unguided_against_its_teachers_reference(tmp_path, monkeypatch, capsys):
    from test_generate_fixtures import LRC as SHORT_LRC
    from test_generate_fixtures import TINY, make_checkpoint

    teacher = make_checkpoint(tmp_path / "teacher.pt")
    student = make_checkpoint(tmp_path / "student.pt", seed=1, config={
        **TINY, "objective": {"type": "cfm_guidance_distill", "teacher": str(teacher), "cfg_strength": 2.0},
        "sampler": {**TINY["sampler"], "cfg_strength": 0.0}})
    (tmp_path / "song.lrc").write_text(SHORT_LRC, encoding="utf-8")
    out = study(monkeypatch, capsys, "--ckpt", teacher, "--student", student, "--lrc", tmp_path / "song.lrc",
                "--style-text", "folk", "--seconds", "0.3", "--items", "2", "--reference-steps", "16",
                "--rows", "midpoint 8").out
    rows = {r["setting"]: r for r in (json.loads(line) for line in out.splitlines() if line.startswith("{"))}
    teacher_rows = [n for n in rows if not n.startswith("distilled")]
    assert teacher_rows == ["upstream: euler 31, linspace", "midpoint 8, linspace", "midpoint 8, sway -1",
                            "midpoint 8, sway -1, bf16"]
    # unguided: one evaluation per velocity, half the teacher's at the same grid
    assert rows["distilled: euler 31, linspace"]["nfe"] == 31 and rows["distilled: midpoint 8, sway -1"]["nfe"] == 16
    assert rows["midpoint 8, sway -1"]["nfe"] == 32
    # another model (random weights): far from the teacher's reference, and judged by the same verdict
    assert all(r["error"] > rows["midpoint 8, sway -1"]["error"] for n, r in rows.items() if n.startswith("distilled"))
    assert "distilled" not in next(line for line in out.splitlines() if "evaluations" in line and line.startswith("# "))


def test_a_student_needs_its_teacher(monkeypatch, capsys):
    with pytest.raises(SystemExit) as err:
        study(monkeypatch, capsys, "--pretrained", "dir", "--student", "s.pt", "--lrc", "x.lrc")
    assert err.value.code == 2 and "--student needs --ckpt" in capsys.readouterr().err


def test_f5_formats_are_studied_on_its_parity_model(monkeypatch, capsys):
    out = study(monkeypatch, capsys, "--f5", "--golden", "--items", "2", "--reference-steps", "32").out
    lines = out.splitlines()
    assert next(line for line in lines if line.startswith("# ")).startswith("# F5 parity model (")
    rows = {r["setting"]: r for r in (json.loads(line) for line in lines if line.startswith("{"))}
    assert list(rows)[0] == "upstream F5: euler 32, sway -1" and len(rows) == 6
    upstream, mixed = rows["upstream F5: euler 32, sway -1"], rows["euler 32, sway -1, bf16"]
    assert upstream["nfe"] == mixed["nfe"] == 64 and rows["euler 16, sway -1"]["nfe"] == 32
    # the number formats move the result, a little beside the grid's own error
    assert mixed["error"] != upstream["error"] and abs(mixed["error"] / upstream["error"] - 1) < 0.1
    assert rows["euler 16, sway -1"]["error"] > upstream["error"]


def test_a_trained_f5_checkpoint_is_studied_with_a_voice_prompt(tmp_path, monkeypatch, capsys):
    from test_f5tts_cli import ref_wav
    from test_f5tts_recipe import tiny_config
    from test_generate_fixtures import make_checkpoint

    ckpt = make_checkpoint(tmp_path / "speech.pt", config=tiny_config())
    out = study(monkeypatch, capsys, "--f5", "--ckpt", ckpt, "--text", "hello world.", "--ref-audio",
                ref_wav(tmp_path / "r.wav"), "--ref-text", "hello", "--items", "2", "--reference-steps", "8",
                "--rows", "bf16").out
    lines = out.splitlines()
    assert next(line for line in lines if line.startswith("# ")).startswith(f"# trained F5 model ({ckpt})")
    rows = [json.loads(line) for line in lines if line.startswith("{")]
    assert [r["setting"] for r in rows] == ["upstream F5: euler 32, sway -1", "euler 32, sway -1, bf16",
                                            "euler 32, sway -1, bf16 cast whole", "euler 16, sway -1, bf16"]
    assert all(r["error"] > 0 for r in rows)
