"""tensor_bundle.py: round trip, the exact byte layout shared with core/tensor_bundle.cc, and
error messages for malformed files. Needs numpy only.
Run: /usr/bin/python3 tests/parity/test_tensor_bundle.py"""

import os
import struct
import sys
import tempfile
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tensor_bundle import BundleError, read_bundle, write_bundle  # noqa: E402


class TensorBundleTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "t.aoetb")

    def tearDown(self):
        self.dir.cleanup()

    def test_round_trip(self):
        tensors = {
            "w": np.arange(12, dtype=np.float32).reshape(3, 4) - 1.5,
            "loss": np.float64(4.25),
            "tokens": np.arange(6, dtype=np.int32).reshape(2, 3) - 7,
            "counts": np.arange(5, dtype=np.int64) + (1 << 40),
            "empty": np.zeros((0, 3), dtype=np.float32),
        }
        write_bundle(self.path, tensors)
        got = read_bundle(self.path)
        self.assertEqual(list(got), list(tensors))
        for name, value in tensors.items():
            value = np.asarray(value)
            self.assertEqual(got[name].dtype, value.dtype, name)
            self.assertEqual(got[name].shape, value.shape, name)
            np.testing.assert_array_equal(got[name], value)

    def test_byte_layout(self):
        write_bundle(self.path, {"ab": np.array([1.0, -2.0], dtype=np.float32)})
        expected = (b"AOETB1\0\0" + struct.pack("<II", 1, 2) + b"ab" + struct.pack("<BIq", 0, 1, 2)
                    + struct.pack("<ff", 1.0, -2.0))
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), expected)

    def test_truncation_and_bad_magic_name_file_and_offset(self):
        write_bundle(self.path, {"w": np.ones((2, 2), dtype=np.float64)})
        with open(self.path, "rb") as f:
            data = f.read()
        for n in range(len(data)):
            with open(self.path, "wb") as f:
                f.write(data[:n])
            with self.assertRaises(BundleError) as ctx:
                read_bundle(self.path)
            self.assertIn(self.path, str(ctx.exception))
            self.assertIn("byte offset", str(ctx.exception))
        with open(self.path, "wb") as f:
            f.write(b"X" + data[1:])
        with self.assertRaisesRegex(BundleError, "bad magic at byte offset 0"):
            read_bundle(self.path)

    def test_unsupported_dtype_is_refused(self):
        with self.assertRaises(ValueError):
            write_bundle(self.path, {"h": np.zeros(2, dtype=np.float16)})


if __name__ == "__main__":
    unittest.main()
