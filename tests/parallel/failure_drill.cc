// failure_drill: a job in which one rank (the victim) fails in a chosen way while the others sit
// in collectives. run_failure_drill.sh runs it under mpirun and checks that every rank is gone,
// mpirun exits non-zero, within the time limit, with the victim and the cause named.
//
//   failure_drill --scenario=S [--victim=R] [--collective-timeout-s=T] [--pid-dir=DIR]
//
// Scenarios (the victim's part; the other ranks all-reduce in a loop):
//   healthy        nobody fails: 20 all-reduces, finalize, exit 0 (the control)
//   throw          throws std::runtime_error          -> terminate handler -> AbortAll
//   abort_status   AbortAll(InvalidArgument)          (bad input found by the trainer)
//   nan_loss       its loss is NaN; every rank sees it after the all-reduce and aborts
//   sigkill        a thread SIGKILLs the process while the main thread is in an all-reduce
//   check          AOETRON_CHECK fails                -> abort() -> SIGABRT
//   exit_nonzero   returns 1 from main without finalizing (the anti-pattern AbortAll replaces)
//   stall          sleeps forever outside any collective -> the others' collective watchdog
//   step_deadline  arms a 2 s step deadline, then sleeps forever -> its own watchdog
//   mismatch       all-reduces a different element count -> the agreement check
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "parallel/abort.h"
#include "parallel/distributed.h"

namespace {

using namespace aoetron;
using namespace aoetron::parallel;

struct Flags {
  std::string scenario;
  int victim = 1;
  double collective_timeout_s = 600;
  std::string pid_dir;
};

Flags ParseFlags(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const std::string& name) -> const char* {
      return arg.rfind(name + "=", 0) == 0 ? arg.c_str() + name.size() + 1 : nullptr;
    };
    if (const char* v = value("--scenario")) {
      flags.scenario = v;
    } else if (const char* v = value("--victim")) {
      flags.victim = std::atoi(v);
    } else if (const char* v = value("--collective-timeout-s")) {
      flags.collective_timeout_s = std::atof(v);
    } else if (const char* v = value("--pid-dir")) {
      flags.pid_dir = v;
    } else {
      std::cerr << "failure_drill: unknown argument " << arg << "\n";
      std::exit(2);
    }
  }
  return flags;
}

double Now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The moment the victim fails, for run_failure_drill.sh to time the rest of the job's end.
void Announce(int rank, const std::string& what) {
  std::printf("drill: rank %d fails (%s) at %.3f\n", rank, what.c_str(), Now());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  DistributedOptions options;
  // argv is parsed after MPI_Init (which may rewrite it); the timeout is needed before, so it is
  // read from the raw arguments here.
  const Flags early = ParseFlags(argc, argv);
  options.collective_timeout = absl::Seconds(early.collective_timeout_s);
  options.check_collective_agreement = early.scenario == "mismatch";
  absl::StatusOr<DistributedContext> context = InitializeDistributed(&argc, &argv, options);
  if (!context.ok()) {
    std::cerr << context.status() << "\n";
    return 1;
  }
  const Flags flags = ParseFlags(argc, argv);
  const int rank = context->world_rank();
  const bool victim = rank == flags.victim;
  if (!flags.pid_dir.empty()) {
    std::ofstream(absl::StrCat(flags.pid_dir, "/rank.", rank)) << ::getpid() << "\n";
  }
  Communicator& world = context->world();
  std::vector<float> gradients(1 << 16, 1.0f);
  Tensor grads = Tensor::Wrap(gradients.data(), {1 << 16}, DType::kF32);
  world.Barrier();  // everybody is up: from here on, the failure happens mid-job

  const std::string& s = flags.scenario;
  if (victim && s == "sigkill") {
    std::thread([rank] {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      Announce(rank, "SIGKILL");
      ::kill(::getpid(), SIGKILL);
    }).detach();
  }
  for (int step = 0; s != "healthy" || step < 20; ++step) {
    if (victim && step == 3) {
      if (s == "throw") {
        Announce(rank, "exception");
        throw std::runtime_error(absl::StrCat("drill: rank ", rank, " throws at step ", step));
      }
      if (s == "abort_status") {
        Announce(rank, "AbortAll");
        AbortAll(absl::InvalidArgumentError(absl::StrCat("drill: bad input at step ", step)));
      }
      if (s == "check") {
        Announce(rank, "CHECK");
        AOETRON_CHECK(step < 0) << "drill: invariant broken at step " << step;
      }
      if (s == "exit_nonzero") {
        Announce(rank, "return 1 without finalize");
        std::_Exit(1);
      }
      if (s == "stall") {
        Announce(rank, "stall");
        for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
      }
      if (s == "step_deadline") {
        ScopedDeadline deadline(&context->watchdog(), absl::StrCat("training step ", step),
                                absl::Seconds(2));
        Announce(rank, "stall inside a step deadline");
        for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
      }
      if (s == "mismatch") {
        Announce(rank, "mismatched all-reduce");
        world.AllReduce(grads.Rows(0, 1000), ReduceOp::kSum);
      }
    }
    world.AllReduce(grads, ReduceOp::kSum);
    std::fill(gradients.begin(), gradients.end(), 1.0f);
    if (s == "nan_loss" && step == 3) {
      float loss = victim ? std::nanf("") : 2.5f;
      if (victim) Announce(rank, "NaN loss");
      world.AllReduce(Tensor::Wrap(&loss, {1}, DType::kF32), ReduceOp::kMax);
      if (std::isnan(loss)) AbortAll(absl::StrCat("loss is NaN at step ", step));
    }
  }
  std::printf("drill: rank %d finished\n", rank);
  return context->Finalize().ok() ? 0 : 1;
}
