"""The fast Oobleck inference path equals the reference modules (encode / decode, chunked or not)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from golden import rel_err

from toolkit.codecs.oobleck import OobleckCodec
from toolkit.codecs.oobleck_blocks import WNConvTranspose1d
from toolkit.codecs.oobleck_fast import fast_forward, transpose_conv_by_matmul
from toolkit.codecs.oobleck_flops import chunked_decode_flops, conv_flops

FP32 = 1e-5  # max |fast - reference| / max |reference|


def small_codec(**kwargs) -> OobleckCodec:
    """Two blocks: the first decoder upsampling (64 channels, stride 2) takes the matmul route for short
    inputs, the second (16 channels) oneDNN's transposed convolution; snake parameters are non-trivial."""
    torch.manual_seed(0)
    codec = OobleckCodec(channels=2, latent_dim=8, base_channels=16, c_mults=[1, 4], strides=[2, 2],
                         chunk_frames=24, overlap_frames=8, **kwargs)
    with torch.no_grad():
        for name, p in codec.named_parameters():
            if name.endswith(("alpha", "beta")):
                p.normal_(0, 0.5)
            elif name.endswith("weight_g"):
                p.mul_(torch.empty_like(p).uniform_(0.5, 1.5))  # g != ||v||: the fold is not a no-op
    return codec


def both_paths(codec: OobleckCodec, run):
    codec.fast = False
    reference = run()
    codec.fast = True
    return run(), reference


@pytest.mark.parametrize("chunked", [False, True])
def test_fast_decode_equals_reference(chunked):
    codec = small_codec()
    z = torch.randn(2, 61, codec.latent_dim)
    fast, reference = both_paths(codec, lambda: codec.decode(z, chunked=chunked))
    assert fast.shape == reference.shape == (2, 2, 61 * codec.hop_length)
    assert fast.dtype == torch.float32 and fast.is_contiguous()
    assert rel_err(fast, reference) < FP32


@pytest.mark.parametrize("chunked", [False, True])
def test_fast_encode_equals_reference(chunked):
    codec = small_codec()
    wav = torch.randn(2, 2, 61 * codec.hop_length + 3)
    fast, reference = both_paths(codec, lambda: codec.encode(wav, sample=False, chunked=chunked))
    assert rel_err(fast, reference) < FP32
    noise = torch.randn(2, codec.latent_dim, 62)
    fast, reference = both_paths(codec, lambda: codec.encode(wav, noise=noise, chunked=chunked))
    assert rel_err(fast, reference) < FP32


def test_fast_path_exercises_both_transposed_conv_routes(monkeypatch):
    import toolkit.codecs.oobleck_fast as fast_module

    calls = []
    original = fast_module.transpose_conv_by_matmul
    monkeypatch.setattr(fast_module, "transpose_conv_by_matmul", lambda *a: calls.append(1) or original(*a))
    codec = small_codec()
    codec.decode(torch.randn(1, 20, codec.latent_dim), chunked=False)
    # two upsampling convs: the 64-channel one on 20 frames by matmul, the 16-channel one by oneDNN
    assert len(calls) == 1 and sum(isinstance(m, WNConvTranspose1d) for m in codec.decoder.modules()) == 2


@pytest.mark.parametrize("batch, c_in, c_out, stride, steps", [(1, 64, 32, 8, 4), (2, 48, 16, 2, 5),
                                                                (3, 16, 8, 4, 1), (1, 8, 8, 3, 6)])
def test_transpose_conv_by_matmul_equals_conv_transpose(batch, c_in, c_out, stride, steps):
    torch.manual_seed(1)
    padding = (stride + 1) // 2
    x, w, bias = torch.randn(batch, c_in, steps), torch.randn(c_in, c_out, 2 * stride), torch.randn(c_out)
    expected = F.conv_transpose1d(x, w, bias, stride, padding)
    matrix = w.permute(0, 2, 1).reshape(c_in, -1).contiguous()
    x4 = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
    got = transpose_conv_by_matmul(x4, matrix, bias, stride, padding).squeeze(2)
    assert got.shape == expected.shape
    assert rel_err(got, expected) < 1e-6


def test_folded_weights_follow_loaded_and_changed_weights():
    codec = small_codec()
    z = torch.randn(1, 30, codec.latent_dim)
    first = codec.decode(z)  # folds and caches
    other = small_codec()
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * torch.randn_like(p))
    codec.load_state_dict(other.state_dict())  # in-place copies: the cache must notice
    fast, reference = both_paths(codec, lambda: codec.decode(z))
    assert rel_err(fast, reference) < FP32 and rel_err(fast, first) > 1e-3
    with torch.no_grad():
        codec.decoder.layers[0].weight_g.mul_(2.0)  # an in-place edit of one gain
    fast, reference = both_paths(codec, lambda: codec.decode(z))
    assert rel_err(fast, reference) < FP32


def test_state_dict_and_strict_loading_are_unchanged_by_the_cache():
    codec = small_codec()
    keys = list(codec.state_dict())
    codec.decode(torch.randn(1, 10, codec.latent_dim))
    codec.encode(torch.randn(1, 2, 10 * codec.hop_length))
    assert list(codec.state_dict()) == keys
    assert all(k.endswith(("weight_g", "weight_v", "bias", "alpha", "beta")) for k in keys)
    fresh = small_codec()
    fresh.load_state_dict(codec.state_dict(), strict=True)


def test_training_mode_uses_the_reference_modules():
    codec = small_codec()
    with pytest.raises(RuntimeError, match="for inference: call .eval"):
        fast_forward(codec.decoder.train(), torch.randn(1, codec.latent_dim, 4))
    # a decoder in training mode is run by its own modules, and gradients reach weight_g / weight_v
    codec.decoder.requires_grad_(True)
    z = torch.randn(1, codec.latent_dim, 6)
    codec.decode_latents(z).square().mean().backward()
    assert codec.decoder.layers[0].weight_g.grad is not None and codec.decoder.layers[0].weight_v.grad is not None


def test_bf16_convolutions_stay_close_and_return_fp32():
    codec = small_codec(compute_dtype="bf16")
    z = torch.randn(1, 40, codec.latent_dim)
    fast, reference = both_paths(codec, lambda: codec.decode(z))
    assert fast.dtype == torch.float32
    assert 1e-5 < rel_err(fast, reference) < 5e-2  # really bf16, and close (docs/codecs.md has the figures)
    with pytest.raises(ValueError, match="resolve 'auto' first"):
        codec.set_compute_dtype("auto")
    with pytest.raises(ValueError, match="unknown dtype 'fp8'"):
        codec.set_compute_dtype("fp8")


def test_conv_flops_count_the_released_decoder():
    with torch.device("meta"):
        codec = OobleckCodec()
    flops, length = conv_flops(codec.decoder, 128)
    assert length == 128 * 2048
    # first conv 64 -> 2048 (k7), first upsampling 2048 -> 1024 (k16, stride 8) by hand:
    first = 2 * 64 * 2048 * 7 * 128 + 2 * 2048 * 1024 * 16 * 128
    assert flops > first and abs(flops / 1e9 - 645.42) < 0.01
    # chunked: 2048 frames in 21 chunks of 128 frames
    assert chunked_decode_flops(codec.decoder, 2048, 128, 32) == pytest.approx(21 * flops)
    enc_flops, enc_length = conv_flops(codec.encoder, 2048 * 10)
    assert enc_length == 10 and enc_flops > 0
