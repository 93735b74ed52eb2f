"""Guidance distillation (objective `cfm_guidance_distill`): the target is the teacher's guided velocity as the flow
sampler computes it, the teacher is loaded from its file and stays out of the student, a few steps teach the
student's one pass the teacher's two, and the errors say what is wrong."""

from __future__ import annotations

import pytest
import torch
from tiny_recipes import song_batch, tiny_song

from toolkit.models.diffrhythm.recipe import condition_values
from toolkit.models.diffrhythm.request import SongRequest
from toolkit.models.factory import build_recipe
from toolkit.protocols import StepContext
from toolkit.weights import WeightsMismatchError

CFG = 2.0


def teacher_file(tmp_path, seed=0):
    """A tiny 'trained' teacher (random weights, every layer non-zero) saved as a trainer checkpoint."""
    torch.manual_seed(seed)
    teacher = build_recipe(tiny_song()).eval()
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(0.1 * torch.randn_like(p))
    path = tmp_path / "teacher.pt"
    torch.save(teacher.state_dict(), path)
    return teacher, path


def student_config(path, **objective):
    return tiny_song(objective={"type": "cfm_guidance_distill", "teacher": str(path), "cfg_strength": CFG,
                                **objective},
                     sampler={"type": "flow", "steps": 3, "cfg_strength": 0.0})


def test_the_target_is_the_teachers_guided_velocity(tmp_path):
    teacher, path = teacher_file(tmp_path)
    student = build_recipe(student_config(path))
    batch = song_batch(student, b=2, t=24)
    out = student.objective(student.routed, batch["latent"], student.conditions(batch["conditions"]), batch["lens"],
                            draws={"drop": {"audio": False}}, **student.teacher_inputs(batch))
    # by hand, as the flow sampler guides: v + (v - u) * cfg; u drops audio and lyrics, style is its null value
    values = teacher.conditions(batch["conditions"])
    negative = teacher.conditions.negatives(2, 24)
    with torch.no_grad():
        v = teacher.routed(out["x_t"], out["cond"], values, out["time"], {})
        u = teacher.routed(out["x_t"], out["cond"], {**values, **negative}, out["time"],
                           {"audio": torch.ones(2, dtype=torch.bool), "lyrics": torch.ones(2, dtype=torch.bool)})
    expected = v + (v - u) * CFG
    torch.testing.assert_close(out["target"], expected, rtol=1e-4, atol=1e-4)  # batched vs two passes
    assert not torch.allclose(v, u, atol=1e-3), "guidance must change the target in this test"
    assert out["loss"] > 0 and out["loss"].requires_grad


def test_the_teacher_is_frozen_and_never_part_of_the_student(tmp_path):
    teacher, path = teacher_file(tmp_path)
    student = build_recipe(student_config(path))
    keys = set(student.state_dict())
    params = sum(p.numel() for p in student.parameters())
    loss = student.training_step(song_batch(student, b=2, t=24))["loss"]
    loss.backward()
    loaded = student.teacher_recipe()
    assert set(student.state_dict()) == keys and sum(p.numel() for p in student.parameters()) == params
    assert all(not p.requires_grad and p.grad is None for p in loaded.parameters())
    for name, value in teacher.state_dict().items():  # the file's weights, not the student's
        torch.testing.assert_close(loaded.state_dict()[name], value)
    assert student.teacher_recipe() is loaded  # loaded once
    # the trainer's EMA copy of the student (a deep copy) gets the same teacher, not a second one in memory
    import copy

    assert copy.deepcopy(student).teacher_recipe() is loaded


def test_a_few_steps_teach_one_pass_the_guided_sample(tmp_path):
    """The student (started from the teacher) sampled unguided moves towards the teacher sampled with guidance."""
    teacher, path = teacher_file(tmp_path)
    student = build_recipe(student_config(path))
    student.load_state_dict(teacher.state_dict())
    request = dict(lrc="[00:00.05]hello world\n[00:00.30]sing along", style_text="folk, guitar", length=0.4,
                   seed=3, steps=3)
    guided = torch.stack(teacher.generate(SongRequest(**request), decode=False).latents)
    assert teacher.sampler.last_nfe == 6

    def distance() -> float:
        student.eval()
        one_pass = torch.stack(student.generate(SongRequest(**request), decode=False).latents)
        assert student.sampler.last_nfe == 3  # unguided: one evaluation per update
        return float((one_pass - guided).norm() / guided.norm())

    before = distance()
    # batches of this request's conditions around the teacher's guided song (fresh noise and times each step)
    frames = guided.shape[1]
    prepared = student.request_values(condition_values(SongRequest(**request)), student.span(frames))
    batch = {"latent": guided.expand(4, -1, -1), "lens": torch.full((4,), frames), "sample_index": torch.arange(4),
             "conditions": {k: student.conditions[k].collate([v] * 4) for k, v in prepared.items()}}
    student.train()
    optimizer = torch.optim.Adam(student.parameters(), lr=3e-3)
    for step in range(40):
        loss = student.training_step(batch, StepContext(step=step))["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = distance()
    assert after < 0.7 * before, (before, after)


def test_errors_say_what_is_missing_or_wrong(tmp_path):
    with pytest.raises(ValueError, match="needs objective.teacher"):
        build_recipe(tiny_song(objective={"type": "cfm_guidance_distill"}))
    with pytest.raises(ValueError, match="cfg_strength must be > 0"):
        build_recipe(tiny_song(objective={"type": "cfm_guidance_distill", "teacher": "x.pt", "cfg_strength": 0}))
    missing = build_recipe(student_config(tmp_path / "nowhere.pt"))
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        missing.training_step(song_batch(missing, b=2, t=24))
    _, path = teacher_file(tmp_path)
    wider = build_recipe(student_config(path) | {"backbone": {**tiny_song()["backbone"], "dim": 48}})
    with pytest.raises(WeightsMismatchError, match="(?s)objective.teacher=.*student's architecture"):
        wider.training_step(song_batch(wider, b=2, t=24))
    plain = build_recipe(tiny_song())
    batch = song_batch(plain, b=2, t=24)
    with pytest.raises(TypeError, match="takes no \\['teacher'\\]"):
        plain.objective(plain.routed, batch["latent"], plain.conditions(batch["conditions"]), batch["lens"],
                        teacher=plain.routed)


def test_the_trainer_distils_and_its_checkpoints_hold_the_student_only(tmp_path, capsys):
    """toolkit-train with the objective: validation on the EMA copy (it shares the teacher), checkpoints without
    teacher keys, and the result generates unguided through the same loaders."""
    import json

    import yaml
    from test_trainer_recipe import TINY as TRAINED
    from tiny_recipes import song_features

    from toolkit.bin import train as train_cli
    from toolkit.checkpoints import load_checkpoint

    model_cfg = {k: v for k, v in TRAINED.items() if k not in ("data", "train")}
    torch.manual_seed(0)
    teacher = build_recipe(model_cfg)
    torch.save(teacher.state_dict(), tmp_path / "teacher.pt")
    features = tmp_path / "features"
    features.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(6):
        song = song_features(teacher, f"s{i}", torch.randn(40, teacher.codec.latent_dim, generator=g),
                             [(0.1, [10, 11]), (0.5, [12])], "folk, guitar")
        torch.save(song, features / f"s{i}.pt")
    (features / "train.jsonl").write_text("".join(json.dumps({"id": f"s{i}", "path": f"/x/s{i}.wav"}) + "\n"
                                                  for i in range(6)))
    objective = {"type": "cfm_guidance_distill", "teacher": str(tmp_path / "teacher.pt"), "cfg_strength": CFG}
    config = {**TRAINED, "objective": objective, "sampler": {"type": "flow", "steps": 2, "cfg_strength": 0.0}}
    (tmp_path / "distill.yaml").write_text(yaml.safe_dump(config))
    exp = tmp_path / "exp"
    assert train_cli.main(["--config", str(tmp_path / "distill.yaml"), "--exp", str(exp), "--features", str(features),
                           f"train.init_from={tmp_path / 'teacher.pt'}"]) == 0
    assert "final valid loss (step 2)" in capsys.readouterr().out
    ckpt = load_checkpoint(exp / "checkpoints" / "last.pt")
    assert set(ckpt["model_state_dict"]) == set(teacher.state_dict())
    student = build_recipe(ckpt["config"])
    student.load_state_dict(ckpt["model_state_dict"])
    request = SongRequest(lrc="[00:00.05]hello world", style_text="folk, guitar", length=0.3, seed=1)
    student.eval().generate(request, decode=False)
    assert student.sampler.last_nfe == 2  # unguided
