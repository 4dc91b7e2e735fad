#include "core/ops/embedding.h"

#include "core/ops/cpu/kernels.h"
#include "core/ops/cuda/kernels.h"
#include "core/ops/op_checks.h"

namespace aoetron::ops {
namespace {

using namespace internal;  // NOLINT: the op_checks helpers

// Shapes and dtypes shared by forward and backward.
void CheckEmbedding(const char* op, const Tensor& ids, const Tensor& table, const char* rows_name,
                    const Tensor& rows) {
  CheckDType(op, "ids", ids, DType::kI32);
  CheckRank(op, "ids", ids, 1);
  CheckFloat(op, "table", table);
  CheckRank(op, "table", table, 2);
  CheckDType(op, rows_name, rows, table.dtype());
  CheckShapeEq(op, rows_name, rows, {ids.dim(0), table.dim(1)});
}

// Data validation happens before the model, so an id out of range is a bug: CHECK it here,
// before a kernel reads outside the table.
void CheckIds(const char* op, const Tensor& ids, int64_t vocab) {
  const int32_t* id = ids.data<int32_t>();
  for (int64_t t = 0; t < ids.numel(); ++t) {
    AOETRON_CHECK(id[t] >= 0 && id[t] < vocab)
        << op << ": ids[" << t << "] = " << id[t] << " is outside the table's [0, " << vocab << ")";
  }
}

}  // namespace

void EmbeddingForward(const Tensor& ids, const Tensor& table, Tensor& out) {
  constexpr const char* kOp = "EmbeddingForward";
  CheckOperands(kOp, {{"ids", &ids}, {"table", &table}, {"out", &out}});
  CheckEmbedding(kOp, ids, table, "out", out);
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(table)) {  // ids are checked by the kernel (core/cuda/device_errors.h)
    cuda::EmbeddingForward(CudaOrdinal(table), table.dtype(), ids.data<int32_t>(), ids.dim(0),
                           table.raw_data(), table.dim(0), table.dim(1), out.raw_data());
    return;
  }
#endif
  CheckIds(kOp, ids, table.dim(0));
  DispatchFloat(table.dtype(), [&]<typename T>() {
    cpu::EmbeddingForward<T>(ids.data<int32_t>(), ids.dim(0), table.data<T>(), table.dim(1),
                             out.data<T>());
  });
}

void EmbeddingBackward(const Tensor& ids, const Tensor& dout, Tensor& dtable) {
  constexpr const char* kOp = "EmbeddingBackward";
  CheckOperands(kOp, {{"ids", &ids}, {"dout", &dout}, {"dtable", &dtable}});
  CheckEmbedding(kOp, ids, dtable, "dout", dout);
#ifdef AOETRON_WITH_CUDA
  if (OnCuda(dtable)) {
    cuda::EmbeddingBackward(CudaOrdinal(dtable), dtable.dtype(), ids.data<int32_t>(), ids.dim(0),
                            dout.raw_data(), dtable.dim(0), dtable.dim(1), dtable.raw_data());
    return;
  }
#endif
  CheckIds(kOp, ids, dtable.dim(0));
  DispatchFloat(dtable.dtype(), [&]<typename T>() {
    cpu::EmbeddingBackward<T>(ids.data<int32_t>(), ids.dim(0), dout.data<T>(), dtable.dim(1),
                              dtable.data<T>());
  });
}

}  // namespace aoetron::ops
