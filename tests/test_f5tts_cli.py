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


def test_a_reference_clip_without_a_voice_is_refused_and_a_long_or_narrow_one_warned_about(published, tmp_path,
                                                                                            capsys):
    from toolkit.audio import save_audio

    root, _ = published
    silent, long_clip, narrow = tmp_path / "silent.wav", tmp_path / "long.wav", tmp_path / "narrow.wav"
    save_audio(silent, torch.zeros(1, 24000), 24000)
    t = torch.arange(8000 * 3) / 8000
    save_audio(long_clip, (0.1 * torch.sin(2 * math.pi * 200 * t))[None], 8000)  # 3 s at 8 kHz
    save_audio(narrow, (0.1 * torch.sin(2 * math.pi * 200 * t[:8000]))[None], 8000)

    def speak(ref, out):  # a 2-s voice prompt at most (upstream: 12 s)
        return main(["--pretrained", str(root), "--text", "hello.", "--ref-audio", str(ref), "--ref-text", "hello",
                     "--seconds", "0.05", "--quiet", "--out", str(out), *TINY, "max_ref_seconds=2"])

    assert speak(silent, tmp_path / "o") == 2
    assert f"{silent}: the reference clip is silent in its first 1.0 s, so there is no voice to clone" in \
        capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # refused before any model is built or any file written
    assert speak(narrow, tmp_path / "n") == 0
    narrow_warnings = json.loads((tmp_path / "n" / "speech.json").read_text())["warnings"]
    assert narrow_warnings == [f"the reference clip {narrow} is 8000 Hz: the voice prompt has nothing above 4 kHz, "
                               "and the new speech imitates it; give the clip at 24000 Hz or more for full quality"]
    assert speak(long_clip, tmp_path / "l") == 0
    long_warnings = json.loads((tmp_path / "l" / "speech.json").read_text())["warnings"]
    assert long_warnings[0].startswith(f"the reference clip {long_clip} is 3.0 s; only its first 2 s are the "
                                       "voice prompt, so its transcript (ref_text) must be what is said in them")
    err = capsys.readouterr().err
    assert len(long_warnings) == 2 and all(w in err for w in long_warnings)
