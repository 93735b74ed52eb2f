"""style_mulan through a tiny, randomly initialised MuQ-MuLan built with muq's public classes and saved to disk.

The tiny model is laid out like the published one: a MuLan folder whose config.json names the hub towers
("OpenMuQ/MuQ-large-msd-iter", "xlm-roberta-base"), with the towers in the default sub-folders. Nothing
in muq is patched; the conditioner loads everything from the folders (HF_HUB_OFFLINE=1, conftest.py).
"""

import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from toolkit.audio import AudioError, middle_start
from toolkit.conditioners.style_common import StyleError, default_negative_style_path
from toolkit.conditioners.style_mulan import MuLanLoadError, MuLanStyle
from toolkit.protocols import OUT_VECTOR
from toolkit.registry import CONDITIONERS

SR = 24000
PROMPTS = ["folk, acoustic guitar, harmonica, touching.", "pop, piano, happy", "rock, drums, electric guitar",
           "jazz, saxophone, mellow", "classical, strings, calm"]


def _tiny_tokenizer(folder):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import XLMRobertaTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # XLM-R's ids 0..4
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(PROMPTS * 4, trainers.UnigramTrainer(vocab_size=100, special_tokens=specials,
                                                                   unk_token="<unk>"))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))])
    fast = XLMRobertaTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", mask_token="<mask>", cls_token="<s>", sep_token="</s>")
    fast.save_pretrained(folder)
    return tok.get_vocab_size()


def build_tiny_mulan(root):
    """Save a tiny MuQ-MuLan (+ towers) under root/mulan and return that folder."""
    from muq import MuQ, MuQConfig, MuQMuLan
    from transformers import Wav2Vec2ConformerConfig, XLMRobertaConfig, XLMRobertaModel

    torch.manual_seed(0)
    mulan_dir = root / "mulan"
    text_dir, audio_dir = mulan_dir / "xlm-roberta-base", mulan_dir / "MuQ-large-msd-iter"
    vocab = _tiny_tokenizer(text_dir)
    XLMRobertaModel(XLMRobertaConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=40, pad_token_id=1,
                                     bos_token_id=0, eos_token_id=2)).save_pretrained(text_dir)
    conformer = Wav2Vec2ConformerConfig(hidden_size=32, num_attention_heads=2, intermediate_size=64,
                                        conv_depthwise_kernel_size=3).to_dict()
    for key in ("id2label", "label2id"):  # int-keyed dicts that muq's EasyDict cannot hold
        conformer.pop(key)
    MuQ(MuQConfig(encoder_dim=32, encoder_depth=1, conv_dim=8, codebook_size=64, w2v2_config=conformer,
                  stat={"melspec_2048_mean": 6.8, "melspec_2048_std": 19.0})).save_pretrained(audio_dir)
    config = dict(
        mulan=dict(sr=SR, clip_secs=10, dim_latent=512, decoupled_contrastive_learning=True, rank_contrast=True),
        audio_model=dict(name=str(audio_dir), model_dim=32, use_layer_idx=-1),
        text_model=dict(name=str(text_dir), model_dim=32),
        audio_transformer=dict(dim=32, tf_depth=1, heads=2, dim_head=16, ff_mult=2),
        text_transformer=dict(dim=32, tf_depth=1, max_seq_len=64, dim_head=16, heads=2, ff_mult=2))
    MuQMuLan(config).save_pretrained(mulan_dir)
    # Like the published config.json: the towers are named by their hub ids, not by local paths.
    saved = json.loads((mulan_dir / "config.json").read_text())
    saved["audio_model"]["name"] = "OpenMuQ/MuQ-large-msd-iter"
    saved["text_model"]["name"] = "xlm-roberta-base"
    (mulan_dir / "config.json").write_text(json.dumps(saved))
    return mulan_dir


@pytest.fixture(scope="module")
def mulan_dir(tmp_path_factory):
    return build_tiny_mulan(tmp_path_factory.mktemp("tiny_mulan"))


@pytest.fixture(scope="module")
def cond(mulan_dir):
    c = CONDITIONERS.build({"type": "style_mulan", "path": str(mulan_dir)})
    c.load()
    return c


def position_coded(seconds, sr=SR, seed=0):
    """A tone whose pitch changes every 0.1 s, so every clip of it is different."""
    rng = np.random.default_rng(seed)
    steps = int(np.ceil(seconds * 10))
    freqs = np.repeat(rng.uniform(100, 2000, steps), sr // 10)[: int(seconds * sr)]
    phase = 2 * np.pi * np.cumsum(freqs) / sr
    return (0.3 * np.sin(phase) + 0.05 * rng.standard_normal(phase.size)).astype(np.float32)


def write(path, wav, sr=SR):
    sf.write(str(path), wav, sr, subtype="FLOAT")
    return str(path)


def test_offline_env():
    assert os.environ.get("HF_HUB_OFFLINE") == "1"


def test_contract_and_no_weights_in_state_dict(cond):
    assert cond.output_kind == OUT_VECTOR and cond.output_dim == 512
    assert cond.state_dict() == {}  # MuLan stays out of recipe checkpoints
    assert cond.null(3).shape == (3, 512) and not cond.null(3).any()


def test_text_path_unit_512_deterministic(cond):
    a = cond.prepare("folk, acoustic guitar, harmonica, touching.")
    b = cond.prepare({"text": "folk, acoustic guitar, harmonica, touching."})
    c = cond.prepare("pop, piano, happy")
    assert a.shape == (512,) and a.dtype == torch.float32
    assert torch.isclose(a.norm(), torch.tensor(1.0), atol=1e-5)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c, atol=1e-4)
    out = cond(torch.stack([a, c]))
    assert out.shape == (2, 512)


def test_text_errors(cond):
    with pytest.raises(StyleError, match="empty"):
        cond.prepare("   ")
    with pytest.raises(StyleError, match="tokens long"):
        cond.prepare("pop " * 200)


def test_audio_middle_clip_rule(cond, tmp_path):
    wav = position_coded(25.8)
    path = write(tmp_path / "song.wav", wav)
    # upstream: start = (25.8 // 2) - 5 = 7.0 s (floor of half the duration), not 7.9 s
    assert middle_start(25.8, 10) == 7.0
    emb = cond.prepare(path)
    assert emb.shape == (512,) and torch.isclose(emb.norm(), torch.tensor(1.0), atol=1e-5)
    expected = cond.embed_clip(torch.from_numpy(wav[7 * SR:17 * SR]))
    torch.testing.assert_close(emb, expected, atol=1e-5, rtol=0)
    for other_start in (7.9, 0.0, 15.8):
        s = int(other_start * SR)
        other = cond.embed_clip(torch.from_numpy(wav[s:s + 10 * SR]))
        assert (emb - other).abs().max() > 1e-3, other_start
    # the same rule for an in-memory waveform, resampled from 48 kHz
    wav48 = np.repeat(wav, 2)  # a 48 kHz version of the same signal
    from_memory = cond.prepare((torch.from_numpy(wav48), 48000))
    assert torch.nn.functional.cosine_similarity(from_memory, emb, dim=0) > 0.99


def test_short_clip_is_looped(cond, mulan_dir, tmp_path):
    wav = position_coded(4.0, seed=1)
    path = write(tmp_path / "short.wav", wav)
    emb = cond.prepare(path)
    looped = np.tile(wav, 3)[: 10 * SR]
    torch.testing.assert_close(emb, cond.embed_clip(torch.from_numpy(looped)), atol=1e-5, rtol=0)
    whole = MuLanStyle(mulan_dir, short_audio="whole")
    emb_whole = whole.prepare(path)
    torch.testing.assert_close(emb_whole, whole.embed_clip(torch.from_numpy(wav)), atol=1e-5, rtol=0)
    assert (emb_whole - emb).abs().max() > 1e-4
    with pytest.raises(StyleError, match="at least 1 s"):
        cond.prepare(write(tmp_path / "tiny.wav", wav[: SR // 2]))
    with pytest.raises(StyleError, match="silent"):
        cond.prepare(write(tmp_path / "silence.wav", np.zeros(5 * SR, np.float32)))


def test_bad_audio_files(cond, tmp_path):
    with pytest.raises(AudioError, match="not found"):
        cond.prepare(str(tmp_path / "missing.wav"))  # an audio suffix: a path, never a text prompt
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF0000WAVEnot really audio")
    with pytest.raises(AudioError):
        cond.prepare(str(broken))


def test_negative_is_the_shipped_style(cond, tmp_path):
    shipped = torch.from_numpy(np.load(default_negative_style_path())).float()[0]
    neg = cond.negative(2)
    assert neg.shape == (2, 512)
    torch.testing.assert_close(neg[1], shipped)
    assert torch.isclose(shipped.norm(), torch.tensor(1.0), atol=1e-3)
    other = tmp_path / "neg.npy"
    np.save(other, -shipped.numpy()[None])
    c = MuLanStyle(None, negative=str(other))  # an override needs no model
    torch.testing.assert_close(c.negative(1)[0], -shipped)
    assert not MuLanStyle(None, negative=None).negative(2).any()


def test_stored_embedding_needs_no_model(tmp_path):
    vec = torch.nn.functional.normalize(torch.randn(512), dim=0)
    torch.save(vec[None], tmp_path / "style.pt")
    c = MuLanStyle(tmp_path / "nowhere")
    torch.testing.assert_close(c.prepare(str(tmp_path / "style.pt")), vec)
    with pytest.raises(StyleError, match=r"shape \[512\]"):
        c.prepare(torch.zeros(256))


def test_missing_folder_names_files_and_source(tmp_path):
    with pytest.raises(MuLanLoadError) as err:
        MuLanStyle(tmp_path / "absent").prepare("pop, piano")
    msg = str(err.value)
    for needle in ("does not exist", "config.json", "pytorch_model.bin", "OpenMuQ/MuQ-MuLan-large",
                   "OpenMuQ/MuQ-large-msd-iter", "xlm-roberta-base", "CC-BY-NC 4.0"):
        assert needle in msg, needle
    with pytest.raises(MuLanLoadError, match="conditions.style.conditioner.path=DIR"):
        MuLanStyle().load()


def test_incomplete_folder_names_the_missing_file(mulan_dir, tmp_path):
    copy = tmp_path / "mulan"
    shutil.copytree(mulan_dir, copy)
    (copy / "model.safetensors").unlink()
    (copy / "xlm-roberta-base" / "tokenizer.json").unlink()
    with pytest.raises(MuLanLoadError) as err:
        MuLanStyle(copy).load()
    msg = str(err.value)
    assert "has none of model.safetensors, pytorch_model.bin" in msg
    assert "tokenizer.json" in msg and "text tower" in msg
    assert "huggingface-cli download" in msg


def test_mismatched_weights_are_reported(mulan_dir, tmp_path):
    copy = tmp_path / "mulan"
    shutil.copytree(mulan_dir, copy)
    config = json.loads((copy / "config.json").read_text())
    config["text_transformer"]["tf_depth"] = 2  # a model the checkpoint was not trained with
    config["mulan"]["dim_latent"] = 256
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(MuLanLoadError, match=r"(?s)missing keys.*mulan\.text\.transformer\.layers\.1.*wrong-shape"):
        MuLanStyle(copy).load()


def test_pytorch_bin_checkpoint_and_renamed_towers(mulan_dir, tmp_path):
    """The published layout: pytorch_model.bin; towers in folders given explicitly."""
    from safetensors.torch import load_file

    copy = tmp_path / "MuLan"
    shutil.copytree(mulan_dir, copy)
    state = load_file(str(copy / "model.safetensors"))
    (copy / "model.safetensors").unlink()
    torch.save(state, copy / "pytorch_model.bin")
    text = tmp_path / "towers" / "xlm-roberta-base-local"
    shutil.move(str(copy / "xlm-roberta-base"), text)
    c = MuLanStyle(copy, text_tower=text)
    ref = MuLanStyle(mulan_dir)
    torch.testing.assert_close(c.prepare("pop, piano, happy"), ref.prepare("pop, piano, happy"))
    bad = tmp_path / "towers" / "text-encoder"
    shutil.copytree(text, bad)
    with pytest.raises(MuLanLoadError, match="'xlm-roberta' in its path"):
        MuLanStyle(copy, text_tower=bad).load()
