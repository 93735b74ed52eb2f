"""Shared DiT blocks: RoPE conventions, bidirectional attention, masks, norms, timestep embedding."""

from __future__ import annotations

import math

import torch

from toolkit.modules.conv_position import ConvPositionEmbedding
from toolkit.modules.convnext import ConvNeXtV2Block
from toolkit.modules.llama_block import LlamaBlock, RMSNorm
from toolkit.modules.rotary import RotaryEmbedding, apply_rotary, rotate_half, rotate_pairs
from toolkit.modules.text_embedding import ConvTextEmbedding
from toolkit.modules.timestep import sinusoidal_embedding


def test_rotation_conventions():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert rotate_half(x).tolist() == [-3.0, -4.0, 1.0, 2.0]
    assert rotate_pairs(x).tolist() == [-2.0, 1.0, -4.0, 3.0]
    cos_h, _ = RotaryEmbedding(4, style="half")(3)
    cos_p, _ = RotaryEmbedding(4, style="pairs")(3)
    f = 1 / 10000 ** (torch.arange(0, 4, 2).float() / 4)
    assert torch.allclose(cos_h[2], torch.cos(2 * torch.cat([f, f])))
    assert torch.allclose(cos_p[2], torch.cos(2 * f.repeat_interleave(2)))
    assert "inv_freq" in RotaryEmbedding(4, style="pairs", persistent=True).state_dict()
    assert "inv_freq" not in RotaryEmbedding(4).state_dict()


def test_rope_scores_depend_on_relative_position_only():
    for style in ("half", "pairs"):
        rope = RotaryEmbedding(8, style=style)
        cos, sin = rope(12)
        q, k = torch.randn(8), torch.randn(8)

        def score(i, j, q=q, k=k, cos=cos, sin=sin, style=style):
            return apply_rotary(q, cos[i], sin[i], style) @ apply_rotary(k, cos[j], sin[j], style)

        assert torch.allclose(score(3, 1), score(10, 8), atol=1e-5)
        assert not torch.allclose(score(3, 1), score(3, 2), atol=1e-3)


def test_llama_block_is_bidirectional():
    torch.manual_seed(0)
    block = LlamaBlock(32, 4, 64).eval()
    rope = RotaryEmbedding(8)(6)
    x = torch.randn(1, 6, 32)
    y = x.clone()
    y[0, -1] += 1.0  # change the LAST frame
    out_x, out_y = block(x, rope), block(y, rope)
    assert not torch.allclose(out_x[0, 0], out_y[0, 0]), "the first frame must see the last one"
    assert set(k.split(".")[0] for k in block.state_dict()) == {
        "self_attn", "mlp", "input_layernorm", "post_attention_layernorm"}


def test_rmsnorm_computes_in_float32():
    norm = RMSNorm(16)
    x = torch.randn(2, 16, dtype=torch.float16) * 300
    expected = (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-6)).half()
    assert torch.equal(norm.half()(x), expected)


def test_conv_position_mask_isolates_padding():
    torch.manual_seed(0)
    conv = ConvPositionEmbedding(32, kernel_size=5, groups=4)
    mask = torch.tensor([[True] * 7 + [False] * 3])
    x = torch.randn(1, 10, 32)
    y = x.clone()
    y[0, 7:] = 100.0
    out_x, out_y = conv(x, mask), conv(y, mask)
    assert torch.equal(out_x, out_y) and (out_x[0, 7:] == 0).all()
    assert not torch.equal(conv(x), conv(y))  # without a mask the padding leaks in


def test_convnext_zero_grn_and_text_embedding_masks():
    torch.manual_seed(0)
    block = ConvNeXtV2Block(8, 16)
    assert torch.count_nonzero(block.grn.gamma) == 0 and torch.count_nonzero(block.grn.beta) == 0
    text = ConvTextEmbedding(10, 8, conv_layers=1, max_positions=6)
    tokens = torch.tensor([[3, 4, 5, 0, 0, 0, 0, 0]])
    pad = tokens == 0
    out = text(tokens, pad=pad)
    assert (out[pad] == 0).all()
    dropped = text(tokens, drop=torch.tensor([True]))
    assert torch.allclose(dropped, text(torch.zeros_like(tokens)))
    assert text.freqs_cis.shape == (6, 8) and "freqs_cis" not in text.state_dict()


def test_sinusoidal_embedding_layout_and_precision():
    t = torch.tensor([0.25, 0.5])
    emb = sinusoidal_embedding(t, 8)
    f = torch.tensor([math.exp(-k * math.log(10000) / 3) for k in range(4)], dtype=torch.float64)
    ref = torch.cat([torch.sin(1000 * t.double()[:, None] * f), torch.cos(1000 * t.double()[:, None] * f)], -1)
    assert torch.allclose(emb.double(), ref, atol=1e-4)
    assert emb.dtype == torch.float32 and sinusoidal_embedding(t.half(), 8).dtype == torch.float32
