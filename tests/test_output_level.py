"""The recipe skeleton's output level: songs peak-normalised, speech at its own level, an edit's kept part at its
reference's level, and nothing ever clips."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_recipes import tiny_song

from toolkit.audio import fit_level
from toolkit.models.factory import build_recipe


def test_fit_level_policies():
    wav = torch.tensor([[0.5, -0.25, 0.1]])
    peaked, note = fit_level(wav, peak_db=-1.0)
    assert float(peaked.abs().max()) == pytest.approx(10 ** (-1 / 20)) and "peak-normalised" in note
    kept, note = fit_level(wav, gain=1.0, ceiling_db=-1.0)
    assert torch.equal(kept, wav) and note == "level kept"
    loud, note = fit_level(wav * 4, gain=1.0, ceiling_db=-1.0)
    assert float(loud.abs().max()) == pytest.approx(10 ** (-1 / 20)) and "lowered by" in note
    undone, _ = fit_level(wav, gain=2.0, ceiling_db=0.0)
    assert torch.allclose(undone, wav * 2)


def test_an_edit_keeps_its_reference_level_and_a_song_is_peak_normalised():
    recipe = build_recipe(tiny_song())
    audio = torch.tensor([[0.2, -0.1, 0.05]])
    song, _ = recipe.finish(audio)
    assert float(song.abs().max()) == pytest.approx(10 ** (-1 / 20))
    gain = 10 ** (-6 / 20) / 0.25  # the reference (peak 0.25) was encoded at -6 dBFS
    edit, note = recipe.finish(audio * gain, reference_gain=gain)
    assert torch.allclose(edit, audio, atol=1e-7), "the kept part comes back at the reference's own level"
    loud_edit, note = recipe.finish(audio * 10 * gain, reference_gain=gain)
    assert float(loud_edit.abs().max()) <= 10 ** (-1 / 20) + 1e-6 and "lowered" in note


def test_speech_keeps_its_level_but_never_clips():
    from test_f5tts_recipe import tiny

    recipe = tiny()
    quiet = torch.tensor([[0.3, -0.2]])
    assert torch.equal(recipe.finish(quiet)[0], quiet), "F5's speech keeps the reference clip's loudness"
    over = torch.tensor([[1.4, -0.2]])  # F5's upstream output can pass full scale
    level, note = recipe.finish(over)
    assert math.isclose(float(level.abs().max()), 10 ** (-1 / 20), rel_tol=1e-6) and "lowered" in note
