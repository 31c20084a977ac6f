"""ViT backbone of HaMeR (ViTPose-style plain ViT, Dosovitskiy et al. 2021; Xu et al. 2022).

Input: the 256x256 crop with 32 columns cut on each side -> (B, 3, 256, 192). A 16x16
patch convolution (padding 2) gives a 16x12 token grid; every token gets its position
embedding plus the embedding's slot 0 (HaMeR keeps a "cls" slot but no cls token); pre-norm
transformer blocks; a final LayerNorm; output (B, C, 16, 12). LayerNorm eps 1e-6 throughout.
Inference only (no drop-path / dropout). State-dict keys as the reference checkpoint's
``backbone.*``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ViTConfig

LN_EPS = 1e-6


class PatchEmbed(nn.Module):
    """Conv patch embedding: (B, 3, H, W) -> (B, C, Hp, Wp) with kernel ``patch``,
    stride ``patch // ratio`` and padding ``4 + 2 (ratio // 2 - 1)`` (2 for ratio 1)."""

    def __init__(self, patch_size: int, embed_dim: int, ratio: int = 1, in_chans: int = 3):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size // ratio,
                              padding=4 + 2 * (ratio // 2 - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Attention(nn.Module):
    """Multi-head self-attention, fused qkv with bias: (B, N, C) -> (B, N, C)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # softmax(q k^T / sqrt(d)) v
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """fc1 -> exact GELU -> fc2."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + mlp(LN(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """HaMeR's backbone.

    Args:
        cfg: sizes (``ViTConfig``; ViT-H/16: embed 1280, depth 32, heads 16).

    Forward:
        x: (B, 3, img_size[0], img_size[1]) float, the normalised crop (already cut to 256x192).
        returns (B, embed_dim, Hp, Wp) features (16x12 for 256x192).
    """

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.embed_dim, cfg.ratio)
        h, w = cfg.img_size
        n = (h // cfg.patch_size) * (w // cfg.patch_size) * cfg.ratio ** 2
        self.pos_embed = nn.Parameter(torch.zeros(1, n + 1, cfg.embed_dim))
        self.blocks = nn.ModuleList(Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio, cfg.qkv_bias)
                                    for _ in range(cfg.depth))
        self.last_norm = nn.LayerNorm(cfg.embed_dim, eps=LN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        b, c, hp, wp = x.shape
        x = x.flatten(2).transpose(1, 2)  # (B, Hp*Wp, C), row-major over the grid
        x = x + self.pos_embed[:, 1:] + self.pos_embed[:, :1]
        for blk in self.blocks:
            x = blk(x)
        x = self.last_norm(x)
        return x.transpose(1, 2).reshape(b, c, hp, wp)
