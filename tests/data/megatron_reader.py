"""Reads a .bin/.idx pair the way Megatron-LM's indexed_dataset.py (_IndexReader and
IndexedDataset.get) does, with numpy, and prints what it sees, so that tests can check that our
writer's files are what Megatron reads.

    python3 megatron_reader.py PREFIX

Output: "dtype <numpy dtype>", "documents <document_indices...>", then one line per sequence:
"<length> <tokens...>".
"""
import struct
import sys

import numpy as np

_INDEX_HEADER = b"MMIDIDX\x00\x00"
_DTYPES = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 6: np.float64,
           7: np.float32, 8: np.uint16}


def main(prefix):
    idx_path = prefix + ".idx"
    with open(idx_path, "rb") as stream:
        header = stream.read(9)
        assert header == _INDEX_HEADER, f"bad header, cannot read {idx_path}"
        version = struct.unpack("<Q", stream.read(8))[0]
        assert version == 1, f"bad version, cannot read {idx_path}"
        code = struct.unpack("<B", stream.read(1))[0]
        dtype = _DTYPES[code]
        sequence_count = struct.unpack("<Q", stream.read(8))[0]
        document_count = struct.unpack("<Q", stream.read(8))[0]
        offset = stream.tell()
    idx_buffer = memoryview(np.memmap(idx_path, mode="r", order="C"))
    sequence_lengths = np.frombuffer(idx_buffer, dtype=np.int32, count=sequence_count,
                                     offset=offset)
    sequence_pointers = np.frombuffer(idx_buffer, dtype=np.int64, count=sequence_count,
                                      offset=offset + sequence_lengths.nbytes)
    document_indices = np.frombuffer(
        idx_buffer, dtype=np.int64, count=document_count,
        offset=offset + sequence_lengths.nbytes + sequence_pointers.nbytes)
    bin_buffer = memoryview(np.memmap(prefix + ".bin", mode="r", order="C"))
    print("dtype", np.dtype(dtype).name)
    print("documents", " ".join(str(int(d)) for d in document_indices))
    for length, pointer in zip(sequence_lengths, sequence_pointers):
        tokens = np.frombuffer(bin_buffer, dtype=dtype, count=int(length), offset=int(pointer))
        print(int(length), " ".join(str(int(t)) for t in tokens))


if __name__ == "__main__":
    main(sys.argv[1])
