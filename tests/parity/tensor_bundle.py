"""Reader and writer for the AOETB1 tensor bundle (the C++ side is core/tensor_bundle.h).

A bundle is an ordered list of named tensors in one little-endian file:

    magic   8 bytes  b"AOETB1\\0\\0"
    count   u32
    count × { name_len u32, name (UTF-8 bytes), dtype u8, rank u32, dims i64 × rank,
              data: numel × element size, row-major }

dtype codes: 0 f32, 1 f64, 2 i32, 3 i64. A rank-0 tensor (a scalar) holds one element.

read_bundle() returns {name: numpy array} in file order; write_bundle() takes such a mapping
(numpy arrays or torch tensors) and refuses dtypes the format does not know rather than
converting them silently.
"""

import struct

import numpy as np

MAGIC = b"AOETB1\0\0"

_CODE_TO_DTYPE = {
    0: np.dtype("<f4"),
    1: np.dtype("<f8"),
    2: np.dtype("<i4"),
    3: np.dtype("<i8"),
}
_DTYPE_TO_CODE = {dtype: code for code, dtype in _CODE_TO_DTYPE.items()}


class BundleError(Exception):
    """A malformed bundle file; the message names the file and the byte offset."""


def _to_numpy(value):
    # torch is optional here: the reader and writer work with numpy alone.
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def write_bundle(path, tensors):
    """Writes `tensors` (a dict or a list of (name, array) pairs) to `path`."""
    items = list(tensors.items()) if isinstance(tensors, dict) else list(tensors)
    with open(path, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<I", len(items)))
        for name, value in items:
            array = _to_numpy(value)
            dtype = array.dtype.newbyteorder("<")
            if dtype not in _DTYPE_TO_CODE:
                raise ValueError(f"{path}: tensor '{name}' has dtype {array.dtype}, which the "
                                 "bundle format does not hold (f32, f64, i32, i64)")
            encoded = name.encode("utf-8")
            f.write(struct.pack("<I", len(encoded)))
            f.write(encoded)
            f.write(struct.pack("<BI", _DTYPE_TO_CODE[dtype], array.ndim))
            f.write(struct.pack(f"<{array.ndim}q", *array.shape))
            f.write(np.ascontiguousarray(array, dtype=dtype).tobytes())


def read_bundle(path):
    """Reads a bundle into an ordered {name: numpy array}. Raises BundleError if malformed."""
    with open(path, "rb") as f:
        data = f.read()
    offset = 0

    def take(n, what):
        nonlocal offset
        if offset + n > len(data):
            raise BundleError(f"{path}: truncated at byte offset {offset} reading {what} "
                              f"({n} bytes wanted, {len(data) - offset} left)")
        chunk = data[offset:offset + n]
        offset += n
        return chunk

    if take(len(MAGIC), "magic") != MAGIC:
        raise BundleError(f"{path}: bad magic at byte offset 0 (not an AOETB1 tensor bundle)")
    (count,) = struct.unpack("<I", take(4, "tensor count"))
    tensors = {}
    for index in range(count):
        (name_len,) = struct.unpack("<I", take(4, f"name length of tensor {index}"))
        name = take(name_len, f"name of tensor {index}").decode("utf-8")
        code_offset = offset
        code, rank = struct.unpack("<BI", take(5, f"dtype and rank of '{name}'"))
        if code not in _CODE_TO_DTYPE:
            raise BundleError(f"{path}: unknown dtype code {code} at byte offset {code_offset} "
                              f"(tensor '{name}')")
        dims = struct.unpack(f"<{rank}q", take(8 * rank, f"dims of '{name}'"))
        if any(d < 0 for d in dims):
            raise BundleError(f"{path}: negative dimension in '{name}' before byte offset "
                              f"{offset}")
        dtype = _CODE_TO_DTYPE[code]
        numel = int(np.prod(dims, dtype=np.int64)) if rank else 1
        raw = take(numel * dtype.itemsize, f"data of '{name}'")
        if name in tensors:
            raise BundleError(f"{path}: tensor name '{name}' appears twice")
        tensors[name] = np.frombuffer(raw, dtype=dtype).reshape(dims).copy()
    if offset != len(data):
        raise BundleError(f"{path}: {len(data) - offset} trailing bytes after the last tensor "
                          f"at byte offset {offset}")
    return tensors
