"""Chunked encode/decode: DiffRhythm's seam rule, and equality with unchunked processing."""

from __future__ import annotations

import pytest
import torch

from toolkit.codecs.chunking import chunk_plan, chunk_starts, chunked_apply
from toolkit.codecs.oobleck import OobleckCodec


def test_reference_plan_for_2048_frames():
    starts = chunk_starts(2048, 128, 32)
    assert len(starts) == 21
    assert starts == [96 * i for i in range(21)] and starts[-1] == 1920
    plan = chunk_plan(2048, 128, 32)
    assert (plan[0].keep_start, plan[0].keep_end) == (0, 112)
    assert all((p.keep_start, p.keep_end) == (16, 112) for p in plan[1:-1])
    assert (plan[-1].keep_start, plan[-1].keep_end) == (16, 128)


def test_encoder_plan_is_the_same_rule_in_samples():
    hop = 2048
    starts = chunk_starts(2048 * hop, 128 * hop, 32 * hop)
    assert starts == [96 * hop * i for i in range(21)]
    plan = chunk_plan(2048 * hop, 128 * hop, 32 * hop)
    assert (plan[1].keep_start, plan[1].keep_end) == (16 * hop, 112 * hop)


def test_unaligned_last_chunk_is_right_aligned():
    starts = chunk_starts(2100, 128, 32)
    assert starts[:-1] == [96 * i for i in range(21)]
    assert starts[-1] == 2100 - 128
    assert chunk_starts(100, 128, 32) == [0] and chunk_starts(128, 128, 32) == [0]
    assert chunk_starts(129, 128, 32) == [0, 1]
    with pytest.raises(ValueError):
        chunk_starts(100, 32, 32)


@pytest.mark.parametrize("frames", [2048, 2100])
def test_seams_drop_16_hops_at_inner_edges(frames):
    """Which chunk wrote each output sample: every inner edge drops exactly 16 x hop samples."""
    hop, calls = 2048, []

    def fake_decoder(z):
        calls.append(z.shape[-1])
        return torch.full((1, 1, z.shape[-1] * hop), float(len(calls) - 1))

    out = chunked_apply(fake_decoder, torch.zeros(1, 4, frames), chunk=128, overlap=32, out_per_in=hop)[0, 0]
    assert out.shape[-1] == frames * hop and all(n == 128 for n in calls)
    starts = chunk_starts(frames, 128, 32)
    owner = out.long()
    for i, start in enumerate(starts):
        lo = (start + (16 if i > 0 else 0)) * hop
        hi = (start + (112 if i < len(starts) - 1 else 128)) * hop
        if i < len(starts) - 2 or frames % 96 == 128 % 96:
            assert torch.all(owner[lo:hi] == i), f"chunk {i} does not own samples [{lo}, {hi})"
        if i > 0:
            assert owner[lo - 1] == i - 1 or i == len(starts) - 1
    assert owner[0] == 0 and owner[-1] == len(starts) - 1
    # the right-aligned last chunk wins where it overlaps its neighbour's kept part
    assert torch.all(owner[(starts[-1] + 16) * hop:] == len(starts) - 1)


def small_codec(**kwargs) -> OobleckCodec:
    torch.manual_seed(0)
    codec = OobleckCodec(channels=2, latent_dim=4, base_channels=4, c_mults=[2], strides=[8], **kwargs)
    with torch.no_grad():  # non-trivial snake parameters
        for name, p in codec.named_parameters():
            if name.endswith(("alpha", "beta")):
                p.normal_(0, 0.3)
    return codec


def decoder_reach(codec: OobleckCodec, frames: int = 64) -> int:
    """How many latent frames away a latent frame still changes the decoded audio."""
    z = torch.randn(1, frames, codec.latent_dim)
    base = codec.decode(z, chunked=False)
    z2 = z.clone()
    z2[0, frames // 2] += 1.0
    changed = ((codec.decode(z2, chunked=False) - base).abs() > 0)[0].any(0).nonzero().flatten()
    first, last = changed[0].item() // codec.hop_length, changed[-1].item() // codec.hop_length
    return max(frames // 2 - first, last - frames // 2)


def encoder_reach(codec: OobleckCodec, frames: int = 64) -> int:
    """How many latent frames away an audio sample still changes the encoder output."""
    hop = codec.hop_length
    x = torch.randn(1, codec.channels, frames * hop)
    base = codec.encode(x, sample=False, chunked=False)
    x2 = x.clone()
    x2[0, :, frames // 2 * hop] += 1.0
    changed = ((codec.encode(x2, sample=False, chunked=False) - base).abs() > 0)[0].any(1).nonzero().flatten()
    return max(frames // 2 - changed[0].item(), changed[-1].item() - frames // 2)


@pytest.mark.parametrize("frames", [96, 101])
def test_chunked_decode_equals_unchunked_when_reach_fits_margin(frames):
    codec = small_codec()
    reach = decoder_reach(codec)
    assert 0 < reach < 16, reach
    codec.chunk_frames, codec.overlap_frames = 40, 2 * (reach + 1)
    assert len(chunk_starts(frames, codec.chunk_frames, codec.overlap_frames)) > 2
    z = torch.randn(2, frames, codec.latent_dim)
    whole = codec.decode(z, chunked=False)
    torch.testing.assert_close(codec.decode(z, chunked=True), whole, atol=1e-5, rtol=1e-5)


def test_chunked_decode_differs_only_near_seams_when_margin_is_small():
    codec = small_codec(chunk_frames=40, overlap_frames=4)
    reach, frames, hop = decoder_reach(codec), 150, codec.hop_length
    z = torch.randn(1, frames, codec.latent_dim)
    diff = (codec.decode(z, chunked=True) - codec.decode(z, chunked=False)).abs()[0].amax(0)
    plan = chunk_plan(frames, 40, 4)
    cuts = [p.start + p.keep_end for p in plan[:-1]] + [p.start + p.keep_start for p in plan[1:]]
    near = torch.zeros(frames * hop, dtype=torch.bool)
    for cut in cuts:
        near[max(0, (cut - reach - 1) * hop):(cut + reach + 1) * hop] = True
    assert diff[~near].max() < 1e-5
    assert diff[near].max() > 1e-3  # the seams are real when the margin is below the reach


@pytest.mark.parametrize("frames", [96, 101])
def test_chunked_encode_equals_unchunked_when_reach_fits_margin(frames):
    codec = small_codec()
    reach = encoder_reach(codec)
    assert 0 < reach < 16, reach
    codec.chunk_frames, codec.overlap_frames = 40, 2 * (reach + 1)
    x = torch.randn(2, codec.channels, frames * codec.hop_length)
    whole = codec.encode(x, sample=False, chunked=False)
    torch.testing.assert_close(codec.encode(x, sample=False, chunked=True), whole, atol=1e-5, rtol=1e-5)
    # sampling happens after stitching, so a fixed noise gives the same sample either way
    noise = torch.randn(2, codec.latent_dim, frames)
    torch.testing.assert_close(codec.encode(x, noise=noise, chunked=True), codec.encode(x, noise=noise, chunked=False),
                               atol=1e-5, rtol=1e-5)
