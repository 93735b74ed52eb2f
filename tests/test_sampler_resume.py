"""An interrupted flow sampler resumes from its saved state: bit-identical to an uninterrupted run, only the
updates left are computed, and a state saved for other inputs or another job is never resumed from."""

import pytest
import torch
from dit_helpers import ToyBackbone

from toolkit.generation.snapshots import FileSnapshots, snapshot_path
from toolkit.objectives.samplers import FlowSampler


class Toy(ToyBackbone):
    """A nonlinear velocity of x, the reference, a condition and t (so every input matters); counts its calls."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.linspace(-1.0, 1.0, 4))

    def forward(self, x, cond, conditions, t, drop=None):
        super().forward(x, cond, conditions, t, drop)
        style = conditions["style"][:, None, :]
        if drop is not None and "style" in drop:
            style = style * (~drop["style"]).float()[:, None, None]
        return torch.tanh(x * self.w + cond + style) - x * t


class Stop(Exception):
    pass


def stop_after(update: int):
    def callback(i, n, t, x):
        if i + 1 == update:
            raise Stop
    return callback


def inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"noise": torch.randn(2, 6, 4, generator=g), "cond": torch.zeros(2, 6, 4),
            "conditions": {"style": torch.randn(2, 4, generator=g)}}


def sampler(method):
    return FlowSampler(steps=6, method=method, cfg_strength=2.0, uncond_drop=("style",), sway_coef=-1.0)


def run(method, store=None, callback=None, **kwargs):
    model, data = Toy(), inputs(kwargs.pop("seed", 0))
    out = sampler(method).sample(model, data["noise"], data["cond"], data["conditions"], snapshots=store,
                                 callback=callback, **kwargs)
    return out, len(model.calls)


def logged():
    lines = []
    return lines, lines.append


@pytest.mark.parametrize("method", ["euler", "midpoint", "dpmpp"])
def test_an_interrupted_run_resumes_bit_identically_with_only_the_updates_left(method, tmp_path):
    path = snapshot_path(tmp_path / "song.wav")
    assert path.name == "song.partial.pt"
    reference, calls = run(method)
    lines, log = logged()
    first = FileSnapshots(path, "job", every_s=0, log=log)
    with pytest.raises(Stop):
        run(method, first, stop_after(4))
    assert path.is_file() and first.on_disk == (4, 6)

    seen = []
    second = FileSnapshots(path, "job", every_s=0, log=log)
    resumed, resumed_calls = run(method, second, lambda i, n, t, x: seen.append(i))
    assert torch.equal(resumed, reference)
    assert seen == [4, 5] and resumed_calls == calls // 3, "only the last 2 of 6 updates are computed"
    assert lines == [f"resuming from update 4 of 6 saved in {path}"]
    assert torch.load(path, weights_only=True)["passes"], "the finished pass's state stays until the job is written"
    second.discard()
    assert not path.exists()


def test_a_state_for_other_inputs_or_another_job_is_not_resumed_from(tmp_path):
    path = tmp_path / "song.partial.pt"
    with pytest.raises(Stop):
        run("euler", FileSnapshots(path, "job", every_s=0, log=print), stop_after(3))

    # the same job with another seed (other noise) or another guidance: a new pass, started from noise
    for kwargs in ({"seed": 1}, {"cfg_strength": 3.0}, {"steps": 5}):
        lines, log = logged()
        expected, calls = run("euler", **kwargs)
        out, store_calls = run("euler", FileSnapshots(path, "job", every_s=1e9, log=log), **kwargs)
        assert torch.equal(out, expected) and store_calls == calls and lines == []

    # another job (request, model or settings): the file is replaced, and says why
    lines, log = logged()
    expected, calls = run("euler")
    out, store_calls = run("euler", FileSnapshots(path, "another job", every_s=0, log=log))
    assert torch.equal(out, expected) and store_calls == calls
    assert lines == [f"{path} was saved for another request, model or settings; starting from noise (it is replaced)"]
    assert torch.load(path, weights_only=True)["identity"] == "another job"


def test_a_torn_file_is_reported_and_sampling_starts_from_noise(tmp_path):
    path = tmp_path / "song.partial.pt"
    path.write_bytes(b"not a torch file")
    lines, log = logged()
    expected, _ = run("euler")
    out, _ = run("euler", FileSnapshots(path, "job", every_s=0, log=log))
    assert torch.equal(out, expected)
    assert lines == [f"{path} is not a readable sampler state (UnpicklingError); starting from noise"]


def test_states_are_written_at_most_every_interval_and_after_the_last_update(tmp_path):
    path = tmp_path / "song.partial.pt"
    store = FileSnapshots(path, "job", every_s=1e9, log=print)
    with pytest.raises(Stop):
        run("euler", store, stop_after(5))
    assert not path.exists() and store.on_disk is None, "nothing written before the interval"
    run("euler", store)
    saved = torch.load(path, weights_only=True)["passes"]
    assert [(e["done"], e["total"]) for e in saved.values()] == [(6, 6)]
