"""Detector ``mediapipe_torch``: MediaPipe's hand networks, converted from the wheel's
``.tflite`` files by this package and run by torch (CUDA or CPU), batched across cameras and
hands. Modules: ``tflite_reader`` (flatbuffer parsing), ``convert`` (TFLite graph -> layer
description), ``network`` (-> torch.fx module), ``cache`` (converted weights on disk),
``models`` (the wheel's files), ``crops`` (device-side crops), ``roi`` (rotated rectangles),
``palm`` / ``landmark`` (MediaPipe's graph logic), ``tiling`` (tiled palm search for small
hands in large frames), ``detector`` (the batched detector)."""
from .detector import MediaPipeTorchHandDetector

__all__ = ["MediaPipeTorchHandDetector"]
