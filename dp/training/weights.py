"""Weights in and out as safetensors only, checked against the names/shapes/dtypes expected.

Parsing uses ``safetensors.numpy`` (a JSON header and raw little-endian buffers: no pickle, no
code), after bounding the header; re-serialisation writes a fresh file from the parsed arrays
with sorted names, so what a steward approves is bytes our code wrote.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping

import numpy as np

from .errors import WeightsRefused

MAX_HEADER_BYTES = 1 << 20
MAX_WEIGHTS_BYTES = 256 << 20

#: name -> (shape, dtype) where dtype is a numpy dtype name ("float32")
Expected = Mapping[str, tuple[tuple[int, ...], str]]


def read_safetensors(data: bytes) -> dict[str, np.ndarray]:
    from safetensors.numpy import load

    if len(data) < 8 or len(data) > MAX_WEIGHTS_BYTES:
        raise WeightsRefused("the weights file is empty or too large")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > MAX_HEADER_BYTES or 8 + header_len > len(data):
        raise WeightsRefused("the weights file has an oversized or truncated header")
    try:
        header = json.loads(data[8:8 + header_len])
    except ValueError:
        raise WeightsRefused("the weights file header is not JSON") from None
    if not isinstance(header, dict):
        raise WeightsRefused("the weights file header is malformed")
    try:
        return dict(load(data))
    except Exception as exc:  # the library's own errors: translated at our boundary
        raise WeightsRefused(f"the weights file does not parse as safetensors ({type(exc).__name__})") from None


def check_weights(arrays: Mapping[str, np.ndarray], expected: Expected) -> None:
    if set(arrays) != set(expected):
        extra, missing = sorted(set(arrays) - set(expected)), sorted(set(expected) - set(arrays))
        raise WeightsRefused(f"unexpected tensors {extra[:5]} / missing tensors {missing[:5]}")
    for name, (shape, dtype) in expected.items():
        a = arrays[name]
        if tuple(a.shape) != tuple(shape) or a.dtype != np.dtype(dtype):
            raise WeightsRefused(f"tensor {name[:60]} is {a.dtype}{list(a.shape)}, expected {dtype}{list(shape)}")
        if not np.isfinite(a).all():
            raise WeightsRefused(f"tensor {name[:60]} has non-finite values")


def write_safetensors(arrays: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None) -> bytes:
    from safetensors.numpy import save

    clean = {k: np.ascontiguousarray(arrays[k]) for k in sorted(arrays)}
    return save(clean, metadata=dict(metadata or {}))


def reserialise(data: bytes, expected: Expected, metadata: Mapping[str, str] | None = None) -> bytes:
    """Parse untrusted weights, check them, and return bytes written by this function."""
    arrays = read_safetensors(data)
    check_weights(arrays, expected)
    return write_safetensors(arrays, metadata)
