"""style_features: a weight-free style embedding that must tell different music apart."""

import numpy as np
import pytest
import soundfile as sf
import torch

from toolkit.conditioners.style_common import StyleError
from toolkit.conditioners.style_features import NUM_STATS, FeatureStyle, orthonormal_projection
from toolkit.protocols import OUT_VECTOR
from toolkit.registry import CONDITIONERS

SR = 22050


def piano(seconds, seed, sr=SR):
    """Decaying harmonic notes drawn from C major at 90 bpm."""
    rng = np.random.default_rng(seed)
    n, beat, out, t = int(seconds * sr), 60 / 90, np.zeros(int(seconds * sr)), 0.0
    while t < seconds:
        f = 440 * 2 ** ((rng.choice([60, 62, 64, 65, 67, 69, 71, 72]) - 69) / 12)
        s = int(t * sr)
        tt = np.arange(min(int(beat * sr), n - s)) / sr
        out[s:s + tt.size] += sum(np.sin(2 * np.pi * f * k * tt) / k ** 1.5 for k in range(1, 6)) * np.exp(-3 * tt)
        t += beat
    return (0.2 * out).astype(np.float32)


def drums(seconds, seed, sr=SR):
    """Kick, hi-hat and snare-like noise bursts at 140 bpm (eighth notes)."""
    rng = np.random.default_rng(seed)
    n, step, out, t, i = int(seconds * sr), 60 / 140 / 2, np.zeros(int(seconds * sr)), 0.0, 0
    while t < seconds:
        s = int(t * sr)
        tt = np.arange(min(int(0.12 * sr), n - s)) / sr
        if i % 4 == 0:
            out[s:s + tt.size] += np.sin(2 * np.pi * (60 + 200 * np.exp(-30 * tt)) * tt) * np.exp(-20 * tt)
        out[s:s + tt.size] += 0.3 * np.diff(rng.standard_normal(tt.size), prepend=0) * np.exp(-60 * tt)
        if i % 8 == 4:
            out[s:s + tt.size] += 0.6 * rng.standard_normal(tt.size) * np.exp(-15 * tt)
        t, i = t + step, i + 1
    return (0.3 * out).astype(np.float32)


@pytest.fixture(scope="module")
def cond():
    return CONDITIONERS.build("style_features")


def cos(a, b):
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def test_separates_different_music(cond, tmp_path):
    a, b = piano(25, seed=0), drums(25, seed=1)
    a1, a2 = cond.embed_clip(a[: 10 * SR]), cond.embed_clip(a[12 * SR: 22 * SR])
    b1, b2 = cond.embed_clip(b[: 10 * SR]), cond.embed_clip(b[12 * SR: 22 * SR])
    same = min(cos(a1, a2), cos(b1, b2))
    different = max(cos(a1, b1), cos(a1, b2), cos(a2, b1), cos(a2, b2))
    assert same > 0.9, same
    assert different < same - 0.5, (same, different)
    # through files: the middle clips of the two songs
    sf.write(tmp_path / "a.wav", a, SR)
    sf.write(tmp_path / "b.flac", b, SR)
    ea, eb = cond.prepare(str(tmp_path / "a.wav")), cond.prepare(tmp_path / "b.flac")
    assert cos(ea, a1) > 0.9 and cos(eb, b1) > 0.9 and cos(ea, eb) < 0.4


def test_unit_512_deterministic_and_gain_free(cond):
    clip = piano(10, seed=3)
    e = cond.embed_clip(clip)
    assert e.shape == (512,) and e.dtype == torch.float32
    assert torch.isclose(e.norm(), torch.tensor(1.0), atol=1e-5)
    torch.testing.assert_close(FeatureStyle().embed_clip(clip), e, atol=0, rtol=0)
    assert cos(cond.embed_clip(0.25 * clip), e) > 0.999
    assert cos(FeatureStyle(seed=7).embed_clip(clip), e) < 0.5  # the projection is what the seed fixes


def test_projection_is_a_fixed_isometry():
    m = orthonormal_projection(512, NUM_STATS, 1234)
    assert m.shape == (512, NUM_STATS)
    np.testing.assert_allclose(m.T @ m, np.eye(NUM_STATS), atol=1e-10)
    # pinned: cached style embeddings stay valid only while this matrix does not change
    np.testing.assert_allclose(m[0, :3], [-0.07280849, 0.00289645, 0.02912184], atol=1e-7)


def test_in_memory_waveform_and_short_audio(cond):
    stereo = np.stack([piano(14, seed=4, sr=44100)] * 2)
    e = cond.prepare((torch.from_numpy(stereo), 44100))
    # the middle rule: 14 s -> start floor(7) - 5 = 2 s
    ref = cond.prepare((stereo[0, 2 * 44100: 12 * 44100], 44100))
    torch.testing.assert_close(e, ref)
    short = cond.prepare((piano(3, seed=5), SR))  # used whole
    assert torch.isclose(short.norm(), torch.tensor(1.0), atol=1e-5)
    with pytest.raises(StyleError, match="at least 1 s"):
        cond.prepare((piano(0.5, seed=5), SR))
    with pytest.raises(StyleError, match="silent"):
        cond.prepare((np.zeros(5 * SR, np.float32), SR))


def test_text_is_refused_with_a_way_out(cond):
    with pytest.raises(StyleError) as err:
        cond.prepare("folk, acoustic guitar, harmonica")
    assert "style_tags" in str(err.value) and "style_mulan" in str(err.value)


def test_null_and_negative(cond, tmp_path):
    assert cond.output_kind == OUT_VECTOR and cond.output_dim == 512
    assert not cond.null(2).any() and cond.null(2).shape == (2, 512)
    assert not cond.negative(2).any()  # no negative configured: zeros
    sf.write(tmp_path / "neg.wav", drums(12, seed=9), SR)
    neg = FeatureStyle(negative=str(tmp_path / "neg.wav"))
    out = neg.negative(3)
    assert out.shape == (3, 512)
    torch.testing.assert_close(out[2], cond.prepare(str(tmp_path / "neg.wav")))


@pytest.mark.parametrize("name", ["style_mulan", "style_features", "style_tags"])
def test_style_conditioners_share_one_contract(name):
    """`style=<name>` is a one-word swap: same output kind and shape, null and negative."""
    c = CONDITIONERS.build(name)
    assert c.output_kind == OUT_VECTOR and c.output_dim == 512
    for batch in (1, 3):
        assert c.null(batch).shape == (batch, 512) and not c.null(batch).any()
        assert c.negative(batch).shape == (batch, 512)
    if name != "style_mulan":  # style_mulan needs weights to prepare audio or text
        value = "pop, piano" if name == "style_tags" else (piano(10, seed=2), SR)
        prepared = torch.stack([c.prepare(value)] * 2)
        out = c(prepared)
        assert out.shape == (2, 512)
        torch.testing.assert_close(out.norm(dim=-1), torch.ones(2))
