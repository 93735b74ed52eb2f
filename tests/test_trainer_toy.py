"""A tiny toy recipe and dataset that follow the trainer's contracts, used by the trainer tests.

ToyRecipe: a two-layer "backbone" (q_proj, o_proj: names LoRA targets) predicting the flow velocity from
(x_t, lyrics, style, t); its noise, flow time and condition drops come from generators keyed on
(seed, step, sample index), so its loss does not depend on how a batch is split.
ToyFrames: items with fixed per-index features and a random window keyed on (seed, step, position).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from toolkit.protocols import Dataset, Recipe, StepContext
from toolkit.registry import DATASETS, RegistryError
from toolkit.training.rng import keyed_generator

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


class ToyBackbone(nn.Module):
    def __init__(self, dim: int, cond_dim: int, hidden: int, dropout: float):
        super().__init__()
        self.time_proj = nn.Linear(1, hidden)
        self.q_proj = nn.Linear(dim + 2 * cond_dim, hidden)
        self.o_proj = nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, time):
        return self.o_proj(self.dropout(torch.tanh(self.q_proj(x) + self.time_proj(time))))


class ToyRecipe(Recipe):
    """Toy flow matching on frames conditioned on a 'lyrics' and a 'style' vector."""

    def __init__(self, dim: int = 4, cond_dim: int = 3, hidden: int = 16, dropout: float = 0.0,
                 drop_prob: float = 0.2, sleep: float = 0.0):
        super().__init__()
        self.cond_dim, self.drop_prob, self.sleep = cond_dim, drop_prob, sleep
        self.transformer = ToyBackbone(dim, cond_dim, hidden, dropout)
        self.conditions = None  # the toy dataset carries its own condition vectors

    def training_step(self, batch, ctx=None):
        ctx = ctx or StepContext()
        step, seed, num_valid_global, world_size = ctx.step, ctx.seed, ctx.num_valid_global, ctx.world_size
        drop_override = ctx.drop_override
        x1, lens = batch["x"], batch["lens"]
        device = x1.device
        B, T, D = x1.shape
        noise, times, drops = [], [], []
        for i in range(B):
            gen = keyed_generator(seed, step, int(batch["sample_index"][i]))
            # drawn at the item's own length: a draw of the padded length would depend on the batch
            n = int(lens[i])
            noise.append(torch.cat([torch.randn(n, D, generator=gen), torch.zeros(T - n, D)]))
            times.append(torch.sigmoid(torch.randn((), generator=gen)))
            drops.append(torch.rand(2, generator=gen) < self.drop_prob)
        noise = torch.stack(noise).to(device)
        t = torch.stack(times).to(device)[:, None, None]
        drop = torch.stack(drops).to(device)
        for j, group in enumerate(("lyrics", "style")):
            if drop_override and group in drop_override:
                drop[:, j] = bool(drop_override[group])
        lyrics = batch["lyrics"] * (~drop[:, :1])
        style = batch["style"] * (~drop[:, 1:])
        cond = torch.cat([lyrics, style], -1)[:, None].expand(B, T, 2 * self.cond_dim)
        xt = (1 - t) * noise + t * x1
        pred = self.transformer(torch.cat([xt, cond], -1), t.expand(B, T, 1))
        mask = torch.arange(T, device=device)[None] < lens[:, None]
        err = ((pred - (x1 - noise)) ** 2).mean(-1) * mask
        total = lens.sum() if num_valid_global is None else num_valid_global
        if self.sleep:
            time.sleep(self.sleep)
        return {"loss": err.sum() / total * world_size}

    def generate(self, request):
        raise NotImplementedError("the toy recipe does not generate")


def build_recipe(cfg):
    return ToyRecipe(**dict(cfg.get("toy", {})))


class ToyFrames(Dataset):
    """Toy items: frames = M1 @ lyrics + M2 @ style + noise, cropped to a random window."""

    def __init__(self, num_items: int = 24, dim: int = 4, cond_dim: int = 3, min_len: int = 3, max_len: int = 16,
                 window: int = 10, seed: int = 0, features_dir: str | None = None, data_seed: int = 123):
        self.num_items, self.dim, self.cond_dim, self.window, self.seed = num_items, dim, cond_dim, window, seed
        self.data_seed = data_seed
        gen = keyed_generator(data_seed, "lengths")
        self.full_lengths = torch.randint(min_len, max_len + 1, (num_items,), generator=gen).tolist()
        self.lengths = [min(n, window) for n in self.full_lengths]
        gen = keyed_generator(data_seed, "mix")
        self.m1 = torch.randn(cond_dim, dim, generator=gen)
        self.m2 = torch.randn(cond_dim, dim, generator=gen)

    def __len__(self):
        return self.num_items

    def item_features(self, index):
        gen = keyed_generator(self.data_seed, "item", index)
        lyrics, style = torch.randn(self.cond_dim, generator=gen), torch.randn(self.cond_dim, generator=gen)
        n = self.full_lengths[index]
        x = (lyrics @ self.m1 + style @ self.m2)[None] * torch.linspace(0.5, 1.5, n)[:, None]
        return x + 0.1 * torch.randn(n, self.dim, generator=gen), lyrics, style

    def __getitem__(self, key):
        index, step, position = key
        x, lyrics, style = self.item_features(index)
        if len(x) > self.window:
            gen = keyed_generator(self.seed, step, position)
            start = int(torch.randint(0, len(x) - self.window + 1, (), generator=gen))
            x = x[start:start + self.window]
        return {"x": x, "lyrics": lyrics, "style": style, "index": index, "position": position}

    def collate(self, items):
        lens = torch.tensor([len(it["x"]) for it in items], dtype=torch.int64)
        x = torch.zeros(len(items), int(lens.max()), self.dim)
        for i, it in enumerate(items):
            x[i, :len(it["x"])] = it["x"]
        return {"x": x, "lens": lens, "lyrics": torch.stack([it["lyrics"] for it in items]),
                "style": torch.stack([it["style"] for it in items]),
                "sample_index": torch.tensor([it["position"] for it in items], dtype=torch.int64),
                "index": torch.tensor([it["index"] for it in items], dtype=torch.int64)}


try:
    DATASETS.register("toy_frames")(ToyFrames)
except RegistryError:  # imported a second time under another module name
    pass


TOY_CONFIG = """\
recipe: toy
toy: {dim: 4, cond_dim: 3, hidden: 16, dropout: 0.0}
data: {type: toy_frames, num_items: 24}
train:
  batch_size: 4
  max_steps: 8
  lr: 0.01
  warmup_steps: 2
  save_every: 4
  keep_last: 2
  valid_every: 4
  valid_size: 4
  valid_batch_size: 3
  log_every: 2
  seed: 7
  tensorboard: false
  progress: false
  ema: {beta: 0.9, update_after_step: 2, update_every: 1}
"""

RUNNER = f"""\
import sys
sys.path.insert(0, {str(TESTS)!r})
import test_trainer_toy as toy
from toolkit.bin import train
sys.exit(train.main(sys.argv[1:], build_recipe=toy.build_recipe))
"""


def write_config(tmp_path: Path, text: str = TOY_CONFIG) -> Path:
    path = tmp_path / "toy.yaml"
    path.write_text(text)
    return path


def runner_script(tmp_path: Path) -> Path:
    path = tmp_path / "run_toy_train.py"
    path.write_text(RUNNER)
    return path


def subprocess_env() -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    return env


def start_training(tmp_path: Path, exp: Path, overrides: list[str], config: Path | None = None) -> subprocess.Popen:
    cmd = [sys.executable, str(runner_script(tmp_path)), "--config", str(config or write_config(tmp_path)),
           "--exp", str(exp), *overrides]
    return subprocess.Popen(cmd, cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def run_training(tmp_path: Path, exp: Path, overrides: list[str], config: Path | None = None,
                 timeout: float = 50) -> str:
    proc = start_training(tmp_path, exp, overrides, config)
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


# ----------------------------------------------------------------------------- the toy keeps its contract
def test_toy_loss_does_not_depend_on_the_split():
    ds, recipe = ToyFrames(), ToyRecipe()
    keys = [(i, 3, p) for p, i in enumerate([5, 1, 9, 2])]
    whole = ds.collate([ds[k] for k in keys])
    n = int(whole["lens"].sum())
    full = recipe.training_step(whole, StepContext(step=3, seed=1))["loss"]
    halves = [recipe.training_step(ds.collate([ds[k] for k in keys[s::2]]),
                                   StepContext(step=3, seed=1, num_valid_global=n, world_size=2))["loss"]
              for s in (0, 1)]
    torch.testing.assert_close(full, sum(halves) / 2)
    other = recipe.training_step(whole, StepContext(step=4, seed=1))["loss"]
    assert not torch.equal(full, other)  # the draws do depend on the step


def test_toy_drop_override_changes_the_loss():
    ds, recipe = ToyFrames(), ToyRecipe()
    batch = ds.collate([ds[(i, -1, i)] for i in range(4)])
    kept = recipe.training_step(batch, StepContext(-1, 0, drop_override={"lyrics": False, "style": False}))["loss"]
    dropped = recipe.training_step(batch, StepContext(-1, 0, drop_override={"lyrics": True, "style": True}))["loss"]
    assert not torch.equal(kept, dropped)


if __name__ == "__main__":
    pytest.main([__file__])
