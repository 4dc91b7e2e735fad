#include "core/ops/embedding.h"

#include "core/ops/cpu/kernels.h"
#include "core/ops/cuda/kernels.h"
#include "core/ops/f32_staging.h"
#include "core/ops/op_checks.h"

namespace aoetron::ops {
namespace {

using namespace internal;  // NOLINT: the op_checks helpers

// Shapes and dtypes shared by forward and backward.
// `rows` (out, dout) sets the activation dtype; the table may be f32 beside bf16 rows (mixed
// precision's f32 gradient: CheckGradientDType), else it is of the rows' dtype.
void CheckEmbedding(const char* op, const Tensor& ids, const char* table_name, const Tensor& table,
                    const char* rows_name, const Tensor& rows) {
  CheckDType(op, "ids", ids, DType::kI32);
  CheckRank(op, "ids", ids, 1);
  CheckFloat(op, rows_name, rows);
  CheckRank(op, table_name, table, 2);
  CheckGradientDType(op, table_name, table, rows.dtype());
  CheckShapeEq(op, rows_name, rows, {ids.dim(0), table.dim(1)});
}

void CheckShardRange(const char* op, const Tensor& table_shard, int64_t row_begin,
                     int64_t vocab_size) {
  AOETRON_CHECK(row_begin >= 0 && row_begin + table_shard.dim(0) <= vocab_size)
      << op << ": table rows [" << row_begin << ", " << row_begin + table_shard.dim(0)
      << ") outside the vocabulary [0, " << vocab_size << ")";
}

}  // namespace

void EmbeddingForward(const Tensor& ids, const Tensor& table, Tensor& out) {
  EmbeddingShardForward(ids, table, 0, table.dim(0), out);
}

void EmbeddingBackward(const Tensor& ids, const Tensor& dout, Tensor& dtable) {
  EmbeddingShardBackward(ids, dout, 0, dtable.dim(0), dtable);
}

void EmbeddingShardForward(const Tensor& ids, const Tensor& table_shard, int64_t row_begin,
                           int64_t vocab_size, Tensor& out) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "EmbeddingForward";
  CheckOperands(kOp, {{"ids", &ids}, {"table", &table_shard}, {"out", &out}});
  CheckEmbedding(kOp, ids, "table", table_shard, "out", out);
  CheckDType(kOp, "table", table_shard, out.dtype());
  CheckShardRange(kOp, table_shard, row_begin, vocab_size);
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(table_shard)) {  // ids are checked by the kernel (core/cuda/device_errors.h)
    cuda::EmbeddingForward(CudaOrdinal(table_shard), table_shard.dtype(), ids.data<int32_t>(),
                           ids.dim(0), table_shard.raw_data(), vocab_size, row_begin,
                           table_shard.dim(0), table_shard.dim(1), out.raw_data());
    return;
  }
#endif
  // Data validation happens before the model, so an id out of range is a bug: CHECK it here,
  // before a kernel reads outside the table.
  if (!OnCuda(ids)) CheckIndexRange(kOp, "ids", ids, vocab_size);  // CUDA: the kernel checks
  if (out.dtype() == DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    EmbeddingShardForward(ids, f32.In(table_shard), row_begin, vocab_size, f32.Out(out));
    return;
  }
  DispatchFloat(table_shard.dtype(), [&]<typename T>() {
    cpu::EmbeddingForward<T>(ids.data<int32_t>(), ids.dim(0), table_shard.data<T>(), row_begin,
                             table_shard.dim(0), table_shard.dim(1), out.data<T>());
  });
}

void EmbeddingShardBackward(const Tensor& ids, const Tensor& dout, int64_t row_begin,
                            int64_t vocab_size, Tensor& dtable_shard) {
  const DeviceAccessScope kernel_access;
  constexpr const char* kOp = "EmbeddingBackward";
  CheckOperands(kOp, {{"ids", &ids}, {"dout", &dout}, {"dtable", &dtable_shard}});
  CheckEmbedding(kOp, ids, "dtable", dtable_shard, "dout", dout);
  CheckShardRange(kOp, dtable_shard, row_begin, vocab_size);
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(dtable_shard) && dtable_shard.dtype() == dout.dtype()) {
    cuda::EmbeddingBackward(CudaOrdinal(dtable_shard), dtable_shard.dtype(), ids.data<int32_t>(),
                            ids.dim(0), dout.raw_data(), vocab_size, row_begin, dtable_shard.dim(0),
                            dtable_shard.dim(1), dtable_shard.raw_data());
    return;
  }
#endif
  // Data validation happens before the model, so an id out of range is a bug: CHECK it here,
  // before a kernel reads outside the table.
  if (!OnCuda(ids)) CheckIndexRange(kOp, "ids", ids, vocab_size);  // CUDA: the kernel checks
  if (dout.dtype() == DType::kBF16) {  // f32 arithmetic on bf16 storage (core/ops/f32_staging.h)
    F32Staging f32;
    EmbeddingShardBackward(ids, f32.In(dout), row_begin, vocab_size, f32.InOut(dtable_shard));
    return;
  }
  DispatchFloat(dtable_shard.dtype(), [&]<typename T>() {
    cpu::EmbeddingBackward<T>(ids.data<int32_t>(), ids.dim(0), dout.data<T>(), row_begin,
                              dtable_shard.dim(0), dtable_shard.dim(1), dtable_shard.data<T>());
  });
}

}  // namespace aoetron::ops
