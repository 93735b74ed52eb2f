"""t5_text from local folders only: a tiny Unigram tokenizer (T5TokenizerFast, built offline here) and a tiny
random T5 saved beside it. The golden set feeds token ids, so tokenisation is pinned here instead: EOS appended,
truncation keeps EOS, padding with the pad id, the mask, and what lands in the state dict."""

from __future__ import annotations

import pytest
import tokenizers
import torch
import transformers

from toolkit.registry import CONDITIONERS

CORPUS = ["warm arpeggios on house beats with drums", "glitchy bass design with lots of distortion",
          "a long reverb tail", "kick", "rain on a tin roof", "soft piano chords", "deep techno groove"]
PAD, EOS, UNK = "<pad>", "</s>", "<unk>"
T5 = {"vocab_size": 48, "d_model": 16, "d_kv": 4, "d_ff": 32, "num_layers": 1, "num_heads": 4,
      "feed_forward_proj": "relu", "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0}


def tiny_tokenizer():
    """A T5-style fast tokenizer: Unigram over Metaspace pieces, ids <pad>=0, </s>=1, <unk>=2, '$A </s>'."""
    from tokenizers import decoders, models, pre_tokenizers, processors, trainers

    tok = tokenizers.Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(vocab_size=T5["vocab_size"], special_tokens=[PAD, EOS, UNK], unk_token=UNK,
                                      show_progress=False)
    tok.train_from_iterator(CORPUS * 4, trainer)
    tok.post_processor = processors.TemplateProcessing(single=f"$A {EOS}", pair=f"$A {EOS} $B {EOS}",
                                                       special_tokens=[(EOS, 1)])
    assert tok.get_vocab_size() <= T5["vocab_size"]
    return transformers.T5TokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=PAD, unk_token=UNK,
                                        extra_ids=0)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_t5")
    tiny_tokenizer().save_pretrained(path)
    torch.manual_seed(0)
    transformers.T5EncoderModel(transformers.T5Config(**T5)).save_pretrained(path)
    return path


def build(folder, **kw):
    node = {"type": "t5_text", "model_path": str(folder), "output_dim": 24, "max_length": 8, "t5_dtype": "float32"}
    return CONDITIONERS.build({**node, **kw}).eval()


def test_prepare_appends_eos_and_pads(folder):
    cond = build(folder)
    ids = cond.prepare("kick")
    assert ids.dtype == torch.long and ids.shape == (8,)
    n = int((ids != 0).sum())
    assert ids[n - 1] == 1 and torch.all(ids[n:] == 0) and torch.all(ids[: n - 1] > 2)
    assert cond.tokenizer.decode(ids[: n - 1]) == "kick"
    assert torch.equal(cond.prepare(["kick"]), ids)  # upstream unwraps one-element lists
    empty = cond.prepare("")
    assert empty[0] == 1 and torch.all(empty[1:] == 0)


def test_truncation_keeps_eos(folder):
    cond = build(folder, max_length=5)
    ids = cond.prepare(CORPUS[1])
    full = build(folder, max_length=64).prepare(CORPUS[1])
    assert int((full != 0).sum()) > 5
    assert ids.tolist() == full[:4].tolist() + [1]


def test_forward_masks_padding_and_matches_the_encoder(folder):
    cond = build(folder)
    ids = torch.stack([cond.prepare(t) for t in ("kick", CORPUS[0], "")])
    with torch.no_grad():
        tokens, mask = cond(ids)
        hidden = cond.encoder(input_ids=ids, attention_mask=ids != 0).last_hidden_state
    assert tokens.shape == (3, 8, 24) and mask.dtype == torch.bool
    assert torch.equal(mask, ids != 0)
    assert torch.all(tokens[~mask] == 0)
    assert torch.allclose(tokens, cond.proj_out(hidden) * mask[..., None], atol=1e-6)
    null_tokens, null_mask = cond.null(2)
    assert null_tokens.shape == (2, 8, 24) and not null_mask.any() and not null_tokens.any()


def test_state_dict_holds_only_the_projection(folder):
    """The T5 stays outside the module tree (published checkpoints hold no T5 keys); proj_out only if needed."""
    assert set(build(folder).state_dict()) == {"proj_out.weight", "proj_out.bias"}
    assert build(folder, output_dim=T5["d_model"]).state_dict() == {}
    assert set(build(folder, output_dim=T5["d_model"], project_out=True).state_dict()) == {"proj_out.weight",
                                                                                           "proj_out.bias"}


def test_default_dtype_is_upstreams_float16(folder):
    cond = build(folder, t5_dtype="float16")
    assert cond.encoder.dtype == torch.float16
    with torch.no_grad():
        tokens, _ = cond(cond.prepare("kick")[None])
    assert tokens.dtype == torch.float32 and torch.isfinite(tokens).all()
    assert CONDITIONERS.get("t5_text")(output_dim=16, model_path=str(folder)).encoder.dtype == torch.float16


def test_separate_tokenizer_folder(folder):
    cond = CONDITIONERS.build({"type": "t5_text", "t5_config": T5, "tokenizer_path": str(folder),
                               "output_dim": 16, "max_length": 8})
    assert torch.equal(cond.prepare("kick"), build(folder).prepare("kick"))


def test_local_folders_only(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        CONDITIONERS.build({"type": "t5_text", "model_path": str(tmp_path / "t5-base")})
    with pytest.raises(ValueError, match="exactly one of model_path"):
        CONDITIONERS.build({"type": "t5_text"})
    cond = CONDITIONERS.build({"type": "t5_text", "t5_config": T5, "output_dim": 16})
    with pytest.raises(ValueError, match="tokenizer_path"):
        cond.prepare("kick")
