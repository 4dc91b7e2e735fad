// SingleProcessCommunicator: the Communicator contract for a group of one, without MPI.
//
// Every collective is the identity (or a copy from input to output), with the same argument
// checks as the MPI backend. It is what InitializeDistributed gives when the build has no MPI,
// and what single-process tests of layers can use without initializing MPI. Split returns
// another group of one. Works for tensors on any device that the CPU can address (copies use
// memmove); failures end the process through AbortAllWithMessage.
#pragma once

#include <memory>
#include <string>

#include "parallel/communicator.h"

namespace aoetron::parallel {

class SingleProcessCommunicator final : public Communicator {
 public:
  explicit SingleProcessCommunicator(std::string name = "world") : name_(std::move(name)) {}

  int rank() const override { return 0; }
  int size() const override { return 1; }
  const std::string& name() const override { return name_; }
  int world_rank() const override { return 0; }

  void AllReduce(Tensor tensor, ReduceOp op) override;
  void ReduceScatter(const Tensor& input, Tensor output) override;
  void AllGather(const Tensor& input, Tensor output) override;
  void AllToAllV(const Tensor& send, std::span<const int64_t> send_rows, Tensor recv,
                 std::span<const int64_t> recv_rows) override;
  using Communicator::AllToAllV;
  void Broadcast(Tensor tensor, int root) override;
  void Barrier() override {}
  std::unique_ptr<Communicator> Split(int color, int key, std::string name) override;

 private:
  [[noreturn]] void Fail(const std::string& call, const std::string& cause) const;
  void Copy(const std::string& call, const Tensor& from, Tensor to) const;

  std::string name_;
};

}  // namespace aoetron::parallel
