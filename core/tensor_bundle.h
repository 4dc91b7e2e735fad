// Tensor bundles: a file of named tensors, for exchanging values and gradients with tools
// outside the runtime (the PyTorch parity check in tests/parity reads and writes them with
// tests/parity/tensor_bundle.py).
//
// Format (AOETB1), all integers little-endian:
//   magic   8 bytes "AOETB1\0\0"
//   count   u32
//   count × { name_len u32, name bytes (UTF-8, no terminator), dtype u8, rank u32,
//             dims i64 × rank, data: numel × element size, row-major, little-endian }
// dtype codes: 0 f32, 1 f64, 2 i32, 3 i64. Other DTypes (bf16, u16) cannot be written.
// A rank-0 tensor holds one element. Names are unique within a bundle.
//
// Both calls are free functions with no shared state, safe to call from several threads on
// different files.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/tensor.h"

namespace aoetron {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// Writes `tensors` in order to `path`, replacing the file. Tensors must be defined CPU tensors of
// f32, f64, i32 or i64, with unique names; otherwise InvalidArgument and nothing is written.
// I/O failures are Internal errors naming the path.
absl::Status WriteTensorBundle(const std::string& path, const NamedTensors& tensors);

// Reads every tensor of the bundle at `path`, in file order, into owned CPU tensors.
// Errors: NotFound if the file cannot be opened; DataLoss for a bad magic, an unknown dtype code,
// a negative dimension, a repeated name, a file that ends early or has trailing bytes — each
// message names the file and the byte offset where reading stopped.
absl::StatusOr<NamedTensors> ReadTensorBundle(const std::string& path);

}  // namespace aoetron
