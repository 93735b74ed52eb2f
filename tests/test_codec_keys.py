"""The released-size Oobleck and Vocos, built on the meta device, have exactly the reference key lists."""

from __future__ import annotations

from pathlib import Path

import torch
from golden import reference_file

from toolkit.codecs.oobleck import OobleckCodec
from toolkit.codecs.vocos import Vocos
from toolkit.registry import CODECS


def reference_keys(name: str) -> list[tuple[str, list[int]]]:
    path = reference_file(name)
    rows = []
    for line in Path(path).read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape, _kind = line.split("\t")
        rows.append((key, [int(s) for s in shape.strip("[]").split(",") if s.strip()]))
    assert rows
    return rows


def our_keys(module: torch.nn.Module) -> list[tuple[str, list[int]]]:
    return [(k, list(v.shape)) for k, v in module.state_dict().items()]


def test_released_oobleck_keys_and_size():
    with torch.device("meta"):
        codec = OobleckCodec()  # the defaults are the released DiffRhythm / Stable Audio Open sizes
    assert our_keys(codec) == reference_keys("oobleck_keys.txt")
    assert sum(p.numel() for p in codec.parameters()) == 156_112_514
    assert (codec.sample_rate, codec.channels, codec.hop_length, codec.latent_dim) == (44100, 2, 2048, 64)
    assert abs(codec.frame_rate - 44100 / 2048) < 1e-9


def test_registry_builds_oobleck_by_name():
    with torch.device("meta"):
        codec = CODECS.build("oobleck")
    assert isinstance(codec, OobleckCodec) and codec.latent_dim == 64


def test_released_vocos_keys_and_size():
    with torch.device("meta"):
        vocos = Vocos.from_hparams(reference_file("vocos_released_config.yaml"))
    assert our_keys(vocos) == reference_keys("vocos_keys.txt")
    assert sum(p.numel() for p in vocos.parameters()) == 13_531_650
