"""`toolkit-generate f5tts` with a --pretrained folder in the published layout (tiny stand-in weights):
the files are found, the published configuration is built (Vocos, pinyin tokens, vocab.txt) and loaded
strictly; bad input is refused before any model is built. The CLI is the generic one: F5's options come
from its request type."""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml
from test_f5tts_cross_recipe import VOCOS_CONFIG

from toolkit.bin.generate import main as generate
from toolkit.codecs.vocos import Vocos
from toolkit.conditioners.char_tokens import write_vocab
from toolkit.config import apply_overrides
from toolkit.models.f5tts.pretrained import find_files, published_config
from toolkit.models.factory import build_recipe


def main(argv):
    return generate(["f5tts", *argv])

TINY = ["backbone.dim=32", "backbone.depth=1", "backbone.heads=2", "backbone.dim_head=16", "backbone.text_dim=16",
        "backbone.conv_layers=1", "sampler.steps=2"]
VOCAB = [" ", ".", ",", "h", "e", "l", "o", "w", "r", "d", "ni3", "hao3"]


@pytest.fixture()
def published(tmp_path):
    root = tmp_path / "published"
    vocos_dir = root / "vocos-mel-24khz"
    vocos_dir.mkdir(parents=True)
    (vocos_dir / "config.yaml").write_text(yaml.safe_dump(VOCOS_CONFIG))
    torch.manual_seed(0)
    torch.save(Vocos.from_hparams(VOCOS_CONFIG).state_dict(), vocos_dir / "pytorch_model.bin")
    (root / "F5TTS_v1_Base").mkdir()
    write_vocab(VOCAB, root / "F5TTS_v1_Base" / "vocab.txt")
    from omegaconf import OmegaConf

    cfg = apply_overrides(OmegaConf.create(published_config(find_pretrained_like(root))), TINY)
    model = build_recipe(cfg)
    with torch.no_grad():
        for p in model.transformer.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    from safetensors.torch import save_file

    state = {f"ema_model.transformer.{k}": v.contiguous() for k, v in model.transformer.state_dict().items()}
    state["ema_model.step"] = torch.tensor(3)
    save_file(state, str(root / "F5TTS_v1_Base" / "model_1250000.safetensors"))
    return root, model


def find_pretrained_like(root):
    return {"vocos": root / "vocos-mel-24khz", "vocab": root / "F5TTS_v1_Base" / "vocab.txt"}


def ref_wav(path):
    from toolkit.audio import save_audio

    t = torch.arange(12000) / 24000
    save_audio(path, (0.1 * torch.sin(2 * math.pi * 200 * t))[None], 24000)
    return str(path)


def test_pretrained_folder_generates(published, tmp_path):
    root, model = published
    files = find_files(root)
    assert files["checkpoint"].name == "model_1250000.safetensors" and files["vocos"].name == "vocos-mel-24khz"
    out = tmp_path / "out"
    code = main(["--pretrained", str(root), "--text", "你好, world.", "--ref-audio", ref_wav(tmp_path / "r.wav"),
                 "--ref-text", "hello", "--out", str(out), *TINY])
    assert code == 0
    manifest = json.loads((out / "speech.json").read_text())
    assert manifest["checkpoint"]["kind"] == "pretrained" and manifest["seconds"] > 0
    assert manifest["recipe"] == "f5tts" and manifest["checkpoint"]["files"]["vocab"]["sha256"]
    # without the recipe's name the folder's files tell which recipe it is
    assert generate(["--pretrained", str(root), "--text", "hi.", "--seconds", "0.05", "--out", str(tmp_path / "o2"),
                     "--quiet", *TINY]) == 0
    from toolkit.audio import load_audio

    wav, sr = load_audio(out / "speech.wav")
    assert sr == 24000 and torch.isfinite(wav).all() and wav.abs().max() > 0


def test_missing_files_and_bad_requests_are_refused(published, tmp_path, capsys):
    root, _ = published
    (root / "F5TTS_v1_Base" / "vocab.txt").unlink()
    assert main(["--pretrained", str(root), "--text", "hi", "--out", str(tmp_path / "o"), *TINY]) == 2
    assert "lacks vocab.txt" in capsys.readouterr().err
    assert main(["--pretrained", str(root), "--text", "hi", "--ref-audio", str(tmp_path / "nope.wav"),
                 "--ref-text", "x", "--out", str(tmp_path / "o")]) == 2
    assert "not found" in capsys.readouterr().err


def test_the_cli_leaves_autograd_on(published, tmp_path):
    """Generation runs under inference mode; the process-wide grad mode is left as it was."""
    root, _ = published
    main(["--pretrained", str(root), "--text", "hello.", "--seconds", "0.05", "--out", str(tmp_path / "o"), *TINY])
    assert torch.is_grad_enabled()
