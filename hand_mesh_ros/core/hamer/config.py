"""HaMeR's ``model_config.yaml``: the sizes and options that the network and the crops need.

The file is the reference's yacs / OmegaConf dump (plain YAML, read with ``yaml.safe_load``).
Only the keys that change inference are read; options this implementation does not support
are refused by name instead of being silently ignored.

Backbone sizes: the reference hard-codes ViT-H/16 (embed 1280, depth 32, heads 16) and has no
config keys for them. A ``MODEL.BACKBONE.GOLDEN_TINY_VIT`` node (used by the test fixtures in
../shared/golden/hamer) or ``MODEL.BACKBONE.VIT`` (this package's extension) overrides them
with keys ``IMG_SIZE``, ``PATCH_SIZE``, ``EMBED_DIM``, ``DEPTH``, ``NUM_HEADS``, ``MLP_RATIO``,
``QKV_BIAS``, ``RATIO``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

import yaml


_ANY = object()
#: Decoder options of the reference that this implementation supports at one value only
#: (``norm_cond_dim`` matters only for the adaptive norm, which is refused).
_DECODER_FIXED = {"num_tokens": 1, "token_dim": 1, "skip_token_embedding": False, "norm_cond_dim": _ANY}


@dataclass
class ViTConfig:
    """ViT backbone sizes (defaults: HaMeR's ViT-H/16 on a 256x192 crop)."""

    img_size: Tuple[int, int] = (256, 192)  # (H, W) [px]
    patch_size: int = 16
    embed_dim: int = 1280
    depth: int = 32
    num_heads: int = 16
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    ratio: int = 1


@dataclass
class DecoderConfig:
    """Transformer-decoder head sizes (defaults: HaMeR's real config; ``dim`` 1024 when absent)."""

    dim: int = 1024
    depth: int = 6
    heads: int = 8
    dim_head: int = 64
    mlp_dim: int = 1024
    context_dim: int = 1280
    dropout: float = 0.0
    emb_dropout: float = 0.0
    norm: str = "layer"


@dataclass
class HamerConfig:
    """What inference needs from ``model_config.yaml``.

    Attributes:
        vit, decoder: network sizes.
        image_size: crop side [px] (256).
        image_mean, image_std: ImageNet normalisation, RGB in [0, 1] units.
        bbox_shape: crop aspect (width, height) [px], (192, 256) for the ViT backbone.
        focal_length: the crop camera's focal length for ``image_size`` [px] (5000).
        num_hand_joints: MANO finger joints (15).
        mano_model_path: ``MANO.MODEL_PATH`` as written (a MANO folder or pkl file).
        path: the YAML file read.
    """

    vit: ViTConfig = field(default_factory=ViTConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    image_size: int = 256
    image_mean: Tuple[float, float, float] = (0.485, 0.456, 0.406)
    image_std: Tuple[float, float, float] = (0.229, 0.224, 0.225)
    bbox_shape: Tuple[int, int] = (192, 256)
    focal_length: float = 5000.0
    num_hand_joints: int = 15
    mano_model_path: str = ""
    path: Optional[str] = None

    @classmethod
    def from_yaml(cls, path) -> "HamerConfig":
        """Read a HaMeR ``model_config.yaml``.

        Raises:
            FileNotFoundError: no such file.
            ValueError: not YAML / not a mapping, or an option this implementation does not
                support (the message names the key and the supported value).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"HaMeR model config not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise ValueError(f"HaMeR model config {path} is not valid YAML: {e}") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("MODEL"), dict):
            raise ValueError(f"HaMeR model config {path} has no MODEL section; is it HaMeR's model_config.yaml?")
        model, mano = raw["MODEL"], raw.get("MANO") or {}
        backbone, head = model.get("BACKBONE") or {}, model.get("MANO_HEAD") or {}

        def need(value, supported, key):
            if value is not None and value != supported:
                raise ValueError(f"HaMeR model config {path}: {key} = {value!r} is not supported "
                                 f"(only {supported!r})")

        need(backbone.get("TYPE"), "vit", "MODEL.BACKBONE.TYPE")
        need(head.get("TYPE"), "transformer_decoder", "MODEL.MANO_HEAD.TYPE")
        need(head.get("JOINT_REP"), "6d", "MODEL.MANO_HEAD.JOINT_REP")
        need(head.get("TRANSFORMER_INPUT"), "zero", "MODEL.MANO_HEAD.TRANSFORMER_INPUT")
        need(head.get("IEF_ITERS"), 1, "MODEL.MANO_HEAD.IEF_ITERS")
        need(mano.get("JOINT_REGRESSOR_EXTRA"), None, "MANO.JOINT_REGRESSOR_EXTRA")

        vit = ViTConfig()
        vit_node = backbone.get("VIT") or backbone.get("GOLDEN_TINY_VIT") or {}
        for key, attr in (("IMG_SIZE", "img_size"), ("PATCH_SIZE", "patch_size"), ("EMBED_DIM", "embed_dim"),
                          ("DEPTH", "depth"), ("NUM_HEADS", "num_heads"), ("MLP_RATIO", "mlp_ratio"),
                          ("QKV_BIAS", "qkv_bias"), ("RATIO", "ratio")):
            if key in vit_node:
                setattr(vit, attr, tuple(vit_node[key]) if attr == "img_size" else vit_node[key])
        dec = DecoderConfig(context_dim=vit.embed_dim)
        for key, value in (head.get("TRANSFORMER_DECODER") or {}).items():
            if key in _DECODER_FIXED:  # the reference's other decoder options, at the values it uses
                if _DECODER_FIXED[key] is not _ANY:
                    need(value, _DECODER_FIXED[key], f"MODEL.MANO_HEAD.TRANSFORMER_DECODER.{key}")
                continue
            if not hasattr(dec, key):
                raise ValueError(f"HaMeR model config {path}: unknown key MODEL.MANO_HEAD.TRANSFORMER_DECODER.{key}")
            setattr(dec, key, value)
        need(dec.norm, "layer", "MODEL.MANO_HEAD.TRANSFORMER_DECODER.norm")
        if dec.context_dim != vit.embed_dim:
            raise ValueError(f"HaMeR model config {path}: decoder context_dim {dec.context_dim} != "
                             f"backbone embed_dim {vit.embed_dim}")
        cfg = cls(vit=vit, decoder=dec, path=str(path))
        cfg.image_size = int(model.get("IMAGE_SIZE", cfg.image_size))
        cfg.image_mean = tuple(float(v) for v in model.get("IMAGE_MEAN", cfg.image_mean))
        cfg.image_std = tuple(float(v) for v in model.get("IMAGE_STD", cfg.image_std))
        cfg.bbox_shape = tuple(int(v) for v in model.get("BBOX_SHAPE", cfg.bbox_shape))
        cfg.focal_length = float((raw.get("EXTRA") or {}).get("FOCAL_LENGTH", cfg.focal_length))
        cfg.num_hand_joints = int(mano.get("NUM_HAND_JOINTS", cfg.num_hand_joints))
        cfg.mano_model_path = str(mano.get("MODEL_PATH", ""))
        if cfg.num_hand_joints != 15:
            raise ValueError(f"HaMeR model config {path}: MANO.NUM_HAND_JOINTS = {cfg.num_hand_joints}, only 15")
        return cfg


def find_model_config(checkpoint) -> Path:
    """``model_config.yaml`` for a checkpoint: next to it, else two levels up (HaMeR's release
    layout ``hamer_ckpts/checkpoints/hamer.ckpt`` + ``hamer_ckpts/model_config.yaml``).

    Raises:
        FileNotFoundError: naming every place looked at.
    """
    ckpt = Path(checkpoint)
    tried: List[Path] = [ckpt.parent / "model_config.yaml", ckpt.parent.parent / "model_config.yaml"]
    for p in tried:
        if p.is_file():
            return p
    raise FileNotFoundError(f"no model_config.yaml for HaMeR checkpoint {ckpt}; looked at "
                            + ", ".join(str(p) for p in tried))


def find_mano_right(cfg: HamerConfig, mano_model_dir: str = "") -> Path:
    """The right-hand MANO pkl HaMeR needs.

    Order: ``mano_model_dir``/MANO_RIGHT.pkl when given; else ``MANO.MODEL_PATH`` of the
    config (a folder holding MANO_RIGHT.pkl, or a pkl file) taken as absolute, relative to the
    config's folder, or relative to its parent (HaMeR's ``_DATA/hamer_ckpts/model_config.yaml``
    with ``MODEL_PATH: data/mano`` -> ``_DATA/data/mano``).

    Raises:
        FileNotFoundError: naming every path tried and where MANO comes from.
    """
    candidates: List[Path] = []
    if mano_model_dir:
        candidates.append(Path(mano_model_dir) / "MANO_RIGHT.pkl")
    elif cfg.mano_model_path:
        mp = Path(cfg.mano_model_path)
        bases = [Path()] if mp.is_absolute() else []
        if cfg.path:
            bases += [Path(cfg.path).parent, Path(cfg.path).parent.parent]
        for base in bases:
            p = base / mp
            candidates.append(p / "MANO_RIGHT.pkl" if p.suffix != ".pkl" else p)
    for p in candidates:
        if p.is_file():
            return p
    raise FileNotFoundError(
        "HaMeR needs the MANO right-hand model (MANO_RIGHT.pkl, from https://mano.is.tue.mpg.de; "
        "never shipped or downloaded): set mano_model_dir to its folder; tried "
        + (", ".join(str(p) for p in candidates) or "nothing (no mano_model_dir, no MANO.MODEL_PATH)"))
