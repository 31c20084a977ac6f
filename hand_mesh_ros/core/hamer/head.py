"""HaMeR's MANO head: one query token, a transformer decoder cross-attending to the ViT
features, and linear read-outs of MANO pose (16 joints as 6D rotations), betas and a
weak-perspective crop camera, each added to a stored mean (``init_*``).

6D rotations: Zhou et al., "On the Continuity of Rotation Representations in Neural
Networks", CVPR 2019 (Gram-Schmidt of two 3-vectors; the rotation's columns).
State-dict keys as the reference checkpoint's ``mano_head.*``. Inference only.
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

from .config import DecoderConfig

NUM_POSE_6D = 16 * 6


def rot6d_to_rotmat(x: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3, 3): columns b1 = a1/|a1|, b2 = unit(a2 - (b1.a2) b1), b3 = b1 x b2,
    with a1 = x[..., 0:3], a2 = x[..., 3:6]."""
    a1, a2 = x[..., 0:3], x[..., 3:6]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-1)


class PreNorm(nn.Module):
    """LayerNorm (eps 1e-5) of the input, then ``fn`` (the context, if any, is not normalised)."""

    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: torch.Tensor, *context: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x), *context)


def _heads(t: torch.Tensor, h: int) -> torch.Tensor:
    """(B, N, h*d) -> (B, h, N, d)."""
    b, n, _ = t.shape
    return t.reshape(b, n, h, -1).transpose(1, 2)


def _merge(t: torch.Tensor) -> torch.Tensor:
    """(B, h, N, d) -> (B, N, h*d)."""
    b, h, n, d = t.shape
    return t.transpose(1, 2).reshape(b, n, h * d)


class SelfAttention(nn.Module):
    """q, k, v = chunks of one bias-free projection; softmax(q k^T / sqrt(dim_head)) v."""

    def __init__(self, dim: int, heads: int, dim_head: int):
        super().__init__()
        self.heads = heads
        self.to_qkv = nn.Linear(dim, 3 * heads * dim_head, bias=False)
        self.to_out = nn.Sequential(nn.Linear(heads * dim_head, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (_heads(t, self.heads) for t in self.to_qkv(x).chunk(3, dim=-1))
        return self.to_out(_merge(F.scaled_dot_product_attention(q, k, v)))


class CrossAttention(nn.Module):
    """Queries from x (dim), keys and values from the context (context_dim), bias-free."""

    def __init__(self, dim: int, context_dim: int, heads: int, dim_head: int):
        super().__init__()
        self.heads = heads
        self.to_kv = nn.Linear(context_dim, 2 * heads * dim_head, bias=False)
        self.to_q = nn.Linear(dim, heads * dim_head, bias=False)
        self.to_out = nn.Sequential(nn.Linear(heads * dim_head, dim))

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        k, v = (_heads(t, self.heads) for t in self.to_kv(context).chunk(2, dim=-1))
        q = _heads(self.to_q(x), self.heads)
        return self.to_out(_merge(F.scaled_dot_product_attention(q, k, v)))


class FeedForward(nn.Module):
    """Linear -> exact GELU -> Linear (indices 0 and 3 as the reference, dropout slots kept)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Identity(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DecoderLayers(nn.Module):
    """``depth`` x [x + SA(LN x), x + CA(LN x, ctx), x + FF(LN x)]; no final norm."""

    def __init__(self, c: DecoderConfig):
        super().__init__()
        self.layers = nn.ModuleList(nn.ModuleList([
            PreNorm(c.dim, SelfAttention(c.dim, c.heads, c.dim_head)),
            PreNorm(c.dim, CrossAttention(c.dim, c.context_dim, c.heads, c.dim_head)),
            PreNorm(c.dim, FeedForward(c.dim, c.mlp_dim)),
        ]) for _ in range(c.depth))

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        for sa, ca, ff in self.layers:
            x = sa(x) + x
            x = ca(x, context) + x
            x = ff(x) + x
        return x


class TokenDecoder(nn.Module):
    """One zero input token -> Linear(1, dim) + position embedding -> ``DecoderLayers``."""

    def __init__(self, c: DecoderConfig):
        super().__init__()
        self.to_token_embedding = nn.Linear(1, c.dim)
        self.pos_embedding = nn.Parameter(torch.zeros(1, 1, c.dim))
        self.transformer = DecoderLayers(c)

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        """context (B, N, context_dim) -> token (B, dim)."""
        token = context.new_zeros(context.shape[0], 1, 1)
        x = self.to_token_embedding(token) + self.pos_embedding
        return self.transformer(x, context)[:, 0]


class ManoHead(nn.Module):
    """Regress MANO and the crop camera from ViT features.

    Forward:
        feats: (B, C, Hp, Wp) backbone features.
        returns dict: ``global_orient`` (B, 1, 3, 3), ``hand_pose`` (B, 15, 3, 3) rotation
        matrices (MANO joint order, right hand), ``betas`` (B, 10), ``pred_cam`` (B, 3)
        ``[s, tx, ty]`` weak-perspective camera of the crop, ``pose_6d`` (B, 96).
    """

    def __init__(self, c: DecoderConfig):
        super().__init__()
        self.register_buffer("init_hand_pose", torch.zeros(1, NUM_POSE_6D))
        self.register_buffer("init_betas", torch.zeros(1, 10))
        self.register_buffer("init_cam", torch.zeros(1, 3))
        self.transformer = TokenDecoder(c)
        self.decpose = nn.Linear(c.dim, NUM_POSE_6D)
        self.decshape = nn.Linear(c.dim, 10)
        self.deccam = nn.Linear(c.dim, 3)

    def forward(self, feats: torch.Tensor) -> Dict[str, torch.Tensor]:
        context = feats.flatten(2).transpose(1, 2)  # (B, Hp*Wp, C)
        t = self.transformer(context)
        pose_6d = self.decpose(t) + self.init_hand_pose
        betas = self.decshape(t) + self.init_betas
        cam = self.deccam(t) + self.init_cam
        rot = rot6d_to_rotmat(pose_6d.reshape(-1, 16, 6).float())
        return {"global_orient": rot[:, :1], "hand_pose": rot[:, 1:], "betas": betas.float(),
                "pred_cam": cam.float(), "pose_6d": pose_6d, "token": t}
