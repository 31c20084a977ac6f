"""Compute precision of the torch stages (the ``precision`` parameter)."""
from __future__ import annotations

from typing import Optional

import torch

from ..config import BY_NAME, check_value


def resolve_precision(precision: str, device: torch.device) -> Optional[torch.dtype]:
    """Autocast dtype for ``precision`` on ``device`` (None = float32).

    "auto": bf16 on a CUDA device that supports it, else fp16 on CUDA, float32 on CPU.
    Raises ValueError for an unknown name or fp16 on CPU (CPU autocast is bf16 only).
    """
    check_value(BY_NAME["precision"], precision)
    cuda = device.type == "cuda"
    if precision == "auto":
        if not cuda:
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision == "fp16" and not cuda:
        raise ValueError("parameter 'precision': fp16 needs a CUDA device; use fp32 or bf16 on CPU")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
