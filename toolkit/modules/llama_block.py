"""A Llama-style pre-norm transformer block: RMSNorm, bias-free attention with RoPE, SwiGLU MLP.

Module names follow transformers' LlamaDecoderLayer so state-dict keys are identical
(`self_attn.{q,k,v,o}_proj`, `mlp.{gate,up,down}_proj`, `input_layernorm`, `post_attention_layernorm`),
but attention is BIDIRECTIONAL: these blocks run over whole latent sequences, never causally.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .rotary import apply_rotary


def add_residual(update: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """x + update, written into `update` (a projection's fresh output) when that keeps the result's dtype.

    a + b == b + a bit for bit, so this only saves a [B, T, dim] tensor; under autocast (bf16 update,
    fp32 stream) the ordinary promoting sum is used.
    """
    if update.dtype == torch.result_type(update, x) and update.shape == x.shape:
        return update.add_(x)
    return x + update


class RMSNorm(nn.Module):
    """weight * (x * rsqrt(mean(x^2) + eps)), the normalisation computed in float32 and cast back."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        h = x.float()
        # the norm's output is in the weights' dtype (a bf16 DiT's blocks read its fp32 residual stream)
        h = (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)).to(dtype).to(self.weight.dtype)
        if torch.is_grad_enabled():
            return self.weight * h
        return h.mul_(self.weight)  # inference: the same product, into the fresh tensor


class SelfAttention(nn.Module):
    """Multi-head self-attention, bias-free projections, RoPE on q and k, scaled dot-product attention."""

    def __init__(self, dim: int, num_heads: int, rotary_style: str = "half"):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not a multiple of num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.rotary_style = rotary_style
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.o_proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None,
                key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: [B, T, dim]; rope: (cos, sin) [T, head_dim]; key_padding_mask: [B, T] bool, True = attend."""
        b, t, _ = x.shape
        # [B, T, heads, head_dim] throughout: RoPE runs on contiguous rows, SDPA reads the transposed views
        # and writes its output in the same layout, so merging the heads back is a view, not a copy.
        q, k, v = (proj(x).view(b, t, self.num_heads, self.head_dim) for proj in (self.q_proj, self.k_proj,
                                                                                 self.v_proj))
        if rope is not None:
            cos, sin = (table.unsqueeze(-2) for table in rope)  # [..., T, 1, head_dim]: shared by the heads
            q = apply_rotary(q, cos, sin, self.rotary_style)
            k = apply_rotary(k, cos, sin, self.rotary_style)
        attn_mask = None if key_padding_mask is None else key_padding_mask[:, None, None, :]
        # is_causal stays False: the sequence is a whole song / utterance, attended both ways.
        h = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                           attn_mask=attn_mask, is_causal=False)
        return self.o_proj(h.transpose(1, 2).reshape(b, t, -1))


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x)), bias-free."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden_dim, bias=False)
        self.up_proj = nn.Linear(dim, hidden_dim, bias=False)
        self.down_proj = nn.Linear(hidden_dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))
        # inference: the same ops in place on the gate projection (two fewer [T, hidden] tensors)
        h = F.silu(self.gate_proj(x), inplace=True)
        return self.down_proj(h.mul_(self.up_proj(x)))


class LlamaBlock(nn.Module):
    """h = x + attn(RMSNorm(x)); out = h + mlp(RMSNorm(h)); returns a tensor (never a tuple)."""

    def __init__(self, dim: int, num_heads: int, hidden_dim: int, eps: float = 1e-6, rotary_style: str = "half"):
        super().__init__()
        self.self_attn = SelfAttention(dim, num_heads, rotary_style)
        self.mlp = SwiGLU(dim, hidden_dim)
        self.input_layernorm = RMSNorm(dim, eps)
        self.post_attention_layernorm = RMSNorm(dim, eps)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None,
                key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = add_residual(self.self_attn(self.input_layernorm(x), rope, key_padding_mask), x)
        return add_residual(self.mlp(self.post_attention_layernorm(x)), x)
