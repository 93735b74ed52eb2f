"""style_tags: tag prompts -> multi-hot -> learned 512-d unit vectors."""

import json

import pytest
import torch

from toolkit.conditioners.style_common import StyleError, asset_path
from toolkit.conditioners.style_tags import TagStyle, normalize_tag
from toolkit.registry import CONDITIONERS


@pytest.fixture()
def cond():
    torch.manual_seed(0)
    return CONDITIONERS.build({"type": "style_tags", "extra_tags": ["Lo-Fi", "pop"]})


def test_vocabulary_is_the_shipped_keywords_plus_extras(cond):
    shipped = json.loads(asset_path("music_prompt_keywords.json").read_text())
    flat = shipped["genre"] + shipped["mood"] + shipped["instrument"]
    assert len(flat) == 59
    assert cond.tags == flat + ["Lo-Fi"]  # "pop" is already there (case-insensitive), not added twice
    assert cond.vocab_size == 60


def test_prepare_multi_hot(cond):
    hot = cond.prepare("Pop, hip hop,  ELECTRIC guitar, happy.")
    assert hot.shape == (60,) and hot.dtype == torch.float32
    assert sorted(cond.tags_of(hot)) == ["Electric Guitar", "Happy", "Hip-Hop", "Pop"]
    assert hot.sum() == 4
    torch.testing.assert_close(cond.prepare(["pop", "Hip-Hop", "electric_guitar", "HAPPY"]), hot)
    with pytest.warns(UserWarning, match="'lofi'"):
        assert cond.tags_of(cond.prepare("lo fi, lofi")) == ["Lo-Fi"]
    assert normalize_tag("  R&B. ") == "r&b"


def test_unknown_tags_warn_or_fail(cond):
    with pytest.warns(UserWarning, match="unknown tag.*'touching'"):
        hot = cond.prepare("folk, acoustic guitar, harmonica, touching.")
    assert sorted(cond.tags_of(hot)) == ["Acoustic Guitar", "Folk", "Harmonica"]
    strict = TagStyle(strict=True)
    with pytest.raises(StyleError, match="'touching'.*extra_tags"):
        strict.prepare("folk, touching")


def test_forward_mean_projected_unit(cond):
    batch = torch.stack([cond.prepare("pop, piano"), cond.prepare("piano, pop"), cond.prepare("metal, drums"),
                         cond.prepare("pop")])
    out = cond(batch)
    assert out.shape == (4, 512)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(4))
    torch.testing.assert_close(out[0], out[1])  # order-free
    assert not torch.allclose(out[0], out[2], atol=1e-3)
    expected = cond.proj((cond.embedding[cond.index["pop"]] + cond.embedding[cond.index["piano"]]) / 2)
    torch.testing.assert_close(out[0], expected / expected.norm())
    # learned: gradients reach the tag embeddings and the projection
    out[0].sum().backward()
    assert cond.embedding.grad[cond.index["pop"]].abs().sum() > 0
    assert cond.embedding.grad[cond.index["metal"]].abs().sum() == 0
    assert cond.proj.weight.grad is not None


def test_no_known_tag_is_the_null_style(cond):
    with pytest.warns(UserWarning):
        empty = cond.prepare("nothing known here")
    assert not empty.any()
    assert not cond(empty[None]).any()
    torch.testing.assert_close(cond(empty[None]), cond.null(1))


def test_negative_prompt_and_errors(cond):
    neg = TagStyle(negative="vocal sample")
    out = neg.negative(2)
    assert out.shape == (2, 512)
    torch.testing.assert_close(out[0], neg(neg.prepare("Vocal Sample")[None])[0])
    assert not cond.negative(2).any()
    with pytest.raises(StyleError, match="style_features"):
        cond.prepare("song.wav")
    with pytest.raises(StyleError, match=r"\[B, 60\]"):
        cond(torch.zeros(2, 59))


def test_custom_vocabulary_file(tmp_path):
    path = tmp_path / "tags.json"
    path.write_text(json.dumps(["Ambient", "Drone"]))
    c = TagStyle(vocabulary=path, extra_tags="Noise, Field Recording")
    assert c.tags == ["Ambient", "Drone", "Noise", "Field Recording"]
    assert c.tags_of(c.prepare("field recording, drone")) == ["Drone", "Field Recording"]
    assert c.state_dict()["embedding"].shape == (4, 256)
