"""Stable Audio Open's `ContinuousTransformer` (stable-audio-tools 0.0.19), with upstream's module names.

Pre-LayerNorm blocks: x += self_attn(LN(x)); x += cross_attn(LN(x), context); x += ff(LN(x)).
  * LayerNorm: learned `gamma`, a zero `beta` BUFFER (stored in the state dict), eps 1e-5.
  * Self-attention: fused `to_qkv`, no biases; RoPE over the first rot = max(dim_heads // 2, 32) dims of each
    head, half-split rotation (toolkit.modules.rotary "half"), computed in float32, over the whole sequence
    (prepended tokens included).
  * Cross-attention: `to_q` from the sequence, `to_kv` from the context (width C, C // dim_heads kv heads,
    repeated head-wise when fewer than the query heads), no RoPE, no mask (upstream discards it).
  * qk_norm "ln" (Stable Audio Open Small): LayerNorm(dim_heads, eps 1e-6, affine) on q and k after the head
    split, before RoPE, in both attentions.
  * Feed-forward: SwiGLU `ff.0.proj` Linear(E, 2 * mult * E, bias) -> value * SiLU(gate) -> `ff.2` Linear.
What differs from DiffRhythm's Llama blocks (toolkit.modules.llama_block): LayerNorm instead of RMSNorm, fused
projections, cross-attention, partial rotary, biased GLU; only the rotary helpers are shared.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..modules.rotary import RotaryEmbedding, apply_rotary

QK_NORMS = (None, "ln")
MIN_ROTARY_DIM = 32


class ZeroBiasLayerNorm(nn.Module):
    """F.layer_norm with a learned `gamma` and a zero `beta` buffer (upstream `LayerNorm(bias=False)`)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(dim))
        self.register_buffer("beta", torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], weight=self.gamma, bias=self.beta, eps=self.eps)


class GLU(nn.Module):
    """`proj` Linear(dim, 2 * inner) -> value * SiLU(gate), value the first half."""

    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.proj = nn.Linear(dim, inner * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.silu(gate)


class FeedForward(nn.Module):
    """Keys `ff.0.proj`, `ff.2` (index 1 is upstream's identity placeholder)."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        inner = dim * mult
        self.ff = nn.Sequential(GLU(dim, inner), nn.Identity(), nn.Linear(inner, dim))
        nn.init.zeros_(self.ff[2].weight)  # upstream zero-initialises the branch output
        nn.init.zeros_(self.ff[2].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ff(x)


class Attention(nn.Module):
    """Self-attention (`to_qkv`) or, with `context_dim`, cross-attention (`to_q`, `to_kv`); `to_out`."""

    def __init__(self, dim: int, dim_heads: int, context_dim: int | None = None, qk_norm: str | None = None):
        super().__init__()
        if dim % dim_heads:
            raise ValueError(f"embed_dim {dim} is not a multiple of dim_heads {dim_heads}")
        if qk_norm not in QK_NORMS:
            raise ValueError(f"qk_norm must be one of {QK_NORMS}, got {qk_norm!r}")
        self.dim_heads, self.heads = dim_heads, dim // dim_heads
        self.is_cross = context_dim is not None
        if self.is_cross:
            if context_dim % dim_heads:
                raise ValueError(f"the cross-attention context width {context_dim} must be a multiple of dim_heads "
                                 f"{dim_heads} (it sets the number of key/value heads)")
            self.kv_heads = context_dim // dim_heads
            if self.heads % self.kv_heads:
                raise ValueError(f"{self.heads} query heads cannot share {self.kv_heads} key/value heads")
            self.to_q = nn.Linear(dim, dim, bias=False)
            self.to_kv = nn.Linear(context_dim, context_dim * 2, bias=False)
        else:
            self.kv_heads = self.heads
            self.to_qkv = nn.Linear(dim, dim * 3, bias=False)
        self.to_out = nn.Linear(dim, dim, bias=False)
        nn.init.zeros_(self.to_out.weight)  # upstream zero-initialises the branch output
        self.qk_norm = qk_norm
        if qk_norm == "ln":
            self.q_norm = nn.LayerNorm(dim_heads, eps=1e-6)
            self.k_norm = nn.LayerNorm(dim_heads, eps=1e-6)

    def _heads(self, t: torch.Tensor, heads: int) -> torch.Tensor:
        b, n, _ = t.shape
        return t.view(b, n, heads, self.dim_heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        if self.is_cross:
            q = self._heads(self.to_q(x), self.heads)
            k, v = (self._heads(t, self.kv_heads) for t in self.to_kv(context).chunk(2, dim=-1))
        else:
            q, k, v = (self._heads(t, self.heads) for t in self.to_qkv(x).chunk(3, dim=-1))
        if self.qk_norm == "ln":
            q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = rotate_leading_dims(q, rope), rotate_leading_dims(k, rope)
        if self.kv_heads < self.heads:
            repeat = self.heads // self.kv_heads  # query head i reads key/value head i // repeat
            k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
        out = F.scaled_dot_product_attention(q, k, v)  # no mask, not causal, scale 1/sqrt(dim_heads)
        b, _, n, _ = out.shape
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


def rotate_leading_dims(t: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """RoPE on the first rot dims of each head (rot = the tables' width) in float32; the rest passes through."""
    cos, sin = rope
    rot = cos.shape[-1]
    tf = t.float()
    rotated = apply_rotary(tf[..., :rot], cos.float(), sin.float(), "half")
    return torch.cat((rotated.to(t.dtype), t[..., rot:]), dim=-1)


class TransformerBlock(nn.Module):
    """Pre-norm self-attention, optional cross-attention, SwiGLU feed-forward (no adaLN)."""

    def __init__(self, dim: int, dim_heads: int, context_dim: int | None = None, qk_norm: str | None = None,
                 ff_mult: int = 4):
        super().__init__()
        self.pre_norm = ZeroBiasLayerNorm(dim)
        self.self_attn = Attention(dim, dim_heads, qk_norm=qk_norm)
        if context_dim is not None:
            self.cross_attend_norm = ZeroBiasLayerNorm(dim)
            self.cross_attn = Attention(dim, dim_heads, context_dim=context_dim, qk_norm=qk_norm)
        self.has_cross = context_dim is not None
        self.ff_norm = ZeroBiasLayerNorm(dim)
        self.ff = FeedForward(dim, ff_mult)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor],
                context: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.self_attn(self.pre_norm(x), rope=rope)
        if self.has_cross and context is not None:
            x = x + self.cross_attn(self.cross_attend_norm(x), context=context)
        return x + self.ff(self.ff_norm(x))


class ContinuousTransformer(nn.Module):
    """project_in -> [prepended tokens; x] -> blocks (RoPE over every position) -> project_out (every position)."""

    def __init__(self, dim: int, depth: int, dim_in: int, dim_out: int, dim_heads: int,
                 context_dim: int | None = None, qk_norm: str | None = None, ff_mult: int = 4):
        super().__init__()
        if dim_heads < MIN_ROTARY_DIM:
            raise ValueError(f"dim_heads (embed_dim // num_heads) must be >= {MIN_ROTARY_DIM}: upstream rotates the "
                             f"first max(dim_heads // 2, 32) dims of each head, got dim_heads {dim_heads}")
        self.layers = nn.ModuleList()  # registered first: upstream's key order starts with the layers
        self.project_in = nn.Linear(dim_in, dim, bias=False)
        self.project_out = nn.Linear(dim, dim_out, bias=False)
        self.rotary_pos_emb = RotaryEmbedding(max(dim_heads // 2, MIN_ROTARY_DIM), style="half", persistent=True)
        for _ in range(depth):
            self.layers.append(TransformerBlock(dim, dim_heads, context_dim, qk_norm, ff_mult))

    def forward(self, x: torch.Tensor, prepend_embeds: torch.Tensor | None = None,
                context: torch.Tensor | None = None) -> torch.Tensor:
        x = self.project_in(x)
        if prepend_embeds is not None:
            x = torch.cat([prepend_embeds, x], dim=1)
        rope = self.rotary_pos_emb(x.shape[1], dtype=torch.float32)
        for layer in self.layers:
            x = layer(x, rope, context)
        return self.project_out(x)
