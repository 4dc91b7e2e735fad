// Helpers shared by the checkpoint tests: scratch directories and synthetic sharded tensors
// whose every element is a known function of (tensor name, global index, version), so any rank
// or process can compute what any box must hold.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "launcher/checkpoint/checkpoint_writer.h"

namespace aoetron::checkpoint::testing {

// A fresh empty directory under $TMPDIR (or /tmp), removed by the destructor.
class ScratchDirectory {
 public:
  explicit ScratchDirectory(const std::string& tag);
  ~ScratchDirectory();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The value of element `flat` (row-major global index) of tensor `name` in checkpoint version
// `version`: exact in f32 (small integers and halves), distinct across names and versions.
double ElementValue(const std::string& name, int64_t flat, int64_t version);

// A CPU tensor of `dtype` (f32, f64, bf16, i32, i64) holding `box` of the tensor's values.
Tensor MakeBox(const TensorBox& box, int64_t version);
// True if `t` holds exactly MakeBox(box, version); otherwise explains the first difference.
::testing::AssertionResult HoldsBox(const Tensor& t, const TensorBox& box, int64_t version);

// A save item for `box` filled with its version-`version` values.
SaveItem MakeItem(const TensorBox& box, int64_t version, bool write = true,
                  pb::TensorKind kind = pb::KIND_PARAMETER);

// Rows [begin, end) of a 2-D tensor / whole tensors.
TensorBox RowsBox(const std::string& name, const Shape& global, int64_t begin, int64_t end,
                  DType dtype = DType::kF32);
TensorBox ColumnsBox(const std::string& name, const Shape& global, int64_t begin, int64_t end,
                     DType dtype = DType::kF32);
TensorBox WholeBox(const std::string& name, const Shape& global, DType dtype = DType::kF32);

// Reads a whole file / writes it back (for damaging checkpoints in tests).
std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& contents);

}  // namespace aoetron::checkpoint::testing
