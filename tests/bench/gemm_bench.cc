// gemm_bench: which CPU sgemm library should ops::Gemm use? Measured here, not assumed.
//
//   build*/bin/gemm_bench [--rounds=3] [--min-seconds=0.4]
//
// For each case (2048³ and the model's real shapes) and for 1 and 2 threads it prints GFLOP/s,
// the median of the timed repetitions after two warm-up calls, for these columns:
//   ours       ops::Gemm: oneDNN's dnnl_sgemm behind our checks (what the runtime uses)
//   dnnl       dnnl_sgemm called directly: the library on its own
//   dnnl+bind  dnnl_sgemm with OMP_PROC_BIND=true OMP_PLACES=cores (child process), to see
//              whether pinning threads — an environment setting — would buy oneDNN more
//   oblas      OpenBLAS cblas_sgemm as Debian ships it: its own CPU detection, every
//              OPENBLAS_* variable removed from the environment (child process)
//   oblas-skx  OpenBLAS with OPENBLAS_CORETYPE=SkylakeX (child process: OpenBLAS reads the
//              variable when it loads, so it must be in the environment before the program starts)
//   eigen      Eigen 3.4, parallelised with OpenMP
// Threads are set through every library's own call (omp_set_num_threads,
// openblas_set_num_threads, Eigen::setNbThreads); no environment variable is needed or read.
// Two cores shared with other work are noisy: the whole sweep runs --rounds times (default 3),
// each round measuring every column once, and the table shows the median over rounds.
//
// Then: the geometric mean per column over the model shapes, the library's best 2-thread
// 2048³ rate (gemm_rate_2t_gflops: the fastest repetition of dnnl or dnnl+bind), our median as a
// fraction of it (≥ 0.80 required), and how ops::Gemm behaves inside an OpenMP parallel region.
#include <dirent.h>
#include <omp.h>
#include <unistd.h>

#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cblas.h"
#include "core/ops/gemm.h"
#include "oneapi/dnnl/dnnl.h"

namespace aoetron {
namespace {

struct GemmCase {
  const char* name;  // what the product is in the model
  int64_t m, n, k;
  bool trans_a, trans_b;
  bool model_shape;  // counted in the geometric mean
};

// M = 2048 tokens per micro-batch, d_model 256, 3·d_model = 768 (fused QKV), vocab-sized
// N = 8192, experts of width 1337 over blocks of 512 tokens. Backward products are the
// transposed forms: dX = dY·W^T (trans_b) and dW = X^T·dY (trans_a).
const std::vector<GemmCase>& Cases() {
  static const std::vector<GemmCase> cases = {
      {"2048^3                        NN", 2048, 2048, 2048, false, false, false},
      {"X[2048,256]*W[256,768]        NN", 2048, 768, 256, false, false, true},
      {"X[2048,256]*W[256,8192]       NN", 2048, 8192, 256, false, false, true},
      {"dW=X[2048,256]^T*dY[2048,768]  TN", 256, 768, 2048, true, false, true},
      {"dX=dY[2048,768]*W[256,768]^T   NT", 2048, 256, 768, false, true, true},
      {"dW=X[2048,256]^T*dY[2048,8192] TN", 256, 8192, 2048, true, false, true},
      {"dX=dY[2048,8192]*W[256,8192]^T NT", 2048, 256, 8192, false, true, true},
      {"expert X[512,256]*W[256,1337] NN", 512, 1337, 256, false, false, true},
      {"expert dX[512,1337]*W[256,1337]^T NT", 512, 256, 1337, false, true, true},
      {"expert dW=X[512,256]^T*dY[512,1337] TN", 256, 1337, 512, true, false, true},
  };
  return cases;
}

struct Operands {
  std::vector<float> a, b, c;
};

Operands MakeOperands(const GemmCase& gemm, std::mt19937& rng) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  Operands operands{std::vector<float>(gemm.m * gemm.k), std::vector<float>(gemm.k * gemm.n),
                    std::vector<float>(gemm.m * gemm.n, 0.0f)};
  for (float& x : operands.a) x = uniform(rng);
  for (float& x : operands.b) x = uniform(rng);
  return operands;
}

// ---- The libraries, each computing C = op(A)·op(B) on row-major storage --------------------

void RunOurs(const GemmCase& g, Operands& x) {
  const Tensor a =
      Tensor::Wrap(x.a.data(), g.trans_a ? Shape{g.k, g.m} : Shape{g.m, g.k}, DType::kF32);
  const Tensor b =
      Tensor::Wrap(x.b.data(), g.trans_b ? Shape{g.n, g.k} : Shape{g.k, g.n}, DType::kF32);
  Tensor c = Tensor::Wrap(x.c.data(), {g.m, g.n}, DType::kF32);
  ops::Gemm(a, g.trans_a, b, g.trans_b, c);
}

void RunDnnl(const GemmCase& g, Operands& x) {
  dnnl_sgemm(g.trans_a ? 'T' : 'N', g.trans_b ? 'T' : 'N', g.m, g.n, g.k, 1.0f, x.a.data(),
             g.trans_a ? g.m : g.k, x.b.data(), g.trans_b ? g.k : g.n, 0.0f, x.c.data(), g.n);
}

void RunOpenBlas(const GemmCase& g, Operands& x) {
  cblas_sgemm(CblasRowMajor, g.trans_a ? CblasTrans : CblasNoTrans,
              g.trans_b ? CblasTrans : CblasNoTrans, g.m, g.n, g.k, 1.0f, x.a.data(),
              g.trans_a ? g.m : g.k, x.b.data(), g.trans_b ? g.k : g.n, 0.0f, x.c.data(), g.n);
}

void RunEigen(const GemmCase& g, Operands& x) {
  using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<const RowMajor> a(x.a.data(), g.trans_a ? g.k : g.m, g.trans_a ? g.m : g.k);
  Eigen::Map<const RowMajor> b(x.b.data(), g.trans_b ? g.n : g.k, g.trans_b ? g.k : g.n);
  Eigen::Map<RowMajor> c(x.c.data(), g.m, g.n);
  if (g.trans_a && g.trans_b) {
    c.noalias() = a.transpose() * b.transpose();
  } else if (g.trans_a) {
    c.noalias() = a.transpose() * b;
  } else if (g.trans_b) {
    c.noalias() = a * b.transpose();
  } else {
    c.noalias() = a * b;
  }
}

struct Library {
  std::string column;
  std::function<void(const GemmCase&, Operands&)> run;
  // Environment for a child process; empty: measured in this process.
  std::string child_environment;
};

// Every OPENBLAS_* variable the calling environment may hold (this machine's shells set
// OPENBLAS_CORETYPE=Haswell and OPENBLAS_L2_SIZE) is cleared for the OpenBLAS children, so
// "as shipped" really is the library's own CPU detection.
constexpr char kClearOpenBlasEnvironment[] = "-u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE";

const std::vector<Library>& Libraries() {
  static const std::vector<Library> libraries = {
      {"ours", RunOurs, ""},
      {"dnnl", RunDnnl, ""},
      {"dnnl+bind", RunDnnl, "OMP_PROC_BIND=true OMP_PLACES=cores"},
      {"oblas", RunOpenBlas, std::string(kClearOpenBlasEnvironment)},
      {"oblas-skx", RunOpenBlas,
       std::string(kClearOpenBlasEnvironment) + " OPENBLAS_CORETYPE=SkylakeX"},
      {"eigen", RunEigen, ""},
  };
  return libraries;
}

void SetThreads(int threads) {
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
  Eigen::setNbThreads(threads);
}

// ---- Timing ---------------------------------------------------------------------------------

struct Rate {
  double median_gflops = 0.0;
  double best_gflops = 0.0;
  // Share of the machine's CPU time that other processes used while this was timed.
  double foreign_share = 0.0;
};

// Other processes above this share of the machine while a cell is timed mark it as contended.
constexpr double kContendedShare = 0.03;

// CPU time used by everything but this process since boot, in clock ticks: the busy time of
// all CPUs (steal included: on a VM that is the host taking our cores) minus our own.
int64_t ForeignCpuTicks() {
  std::ifstream machine("/proc/stat");
  std::string label;
  int64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  machine >> label >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  std::ifstream self("/proc/self/stat");
  std::string line;
  std::getline(self, line);
  // Fields after the parenthesised command name start at field 3; utime and stime are 14, 15.
  std::istringstream fields(line.substr(line.rfind(')') + 2));
  std::string field;
  int64_t own = 0;
  for (int index = 3; index <= 15 && fields >> field; ++index) {
    if (index >= 14) own += std::stoll(field);
  }
  return user + nice + system + irq + softirq + steal - own;
}

double Seconds(const std::function<void()>& fn) {
  const auto start = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Times `library` on one case: two warm-up calls, then enough reps to fill min_seconds (5 to
// 40). When other processes used more than kContendedShare of the machine meanwhile, waits and
// tries again (up to 4 attempts), keeping the least disturbed attempt.
Rate Measure(const GemmCase& g, const Library& library, Operands& x, double min_seconds) {
  auto run = [&] { library.run(g, x); };
  run();  // warm-up: JIT compilation, first-touch page faults, thread pools
  run();
  const double flops = 2.0 * g.m * g.n * g.k;
  const double ticks_per_second = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double cpus = static_cast<double>(std::thread::hardware_concurrency());
  Rate least_disturbed;
  least_disturbed.foreign_share = 2.0;
  for (int attempt = 0; attempt < 4; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::seconds(2));
    const int64_t foreign_before = ForeignCpuTicks();
    const auto start = std::chrono::steady_clock::now();
    std::vector<double> times = {Seconds(run)};
    const int reps = std::clamp(static_cast<int>(min_seconds / times[0]), 5, 40);
    for (int r = 1; r < reps; ++r) times.push_back(Seconds(run));
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::sort(times.begin(), times.end());
    Rate rate;
    rate.median_gflops = flops / times[times.size() / 2] / 1e9;
    rate.best_gflops = flops / times.front() / 1e9;
    rate.foreign_share = static_cast<double>(ForeignCpuTicks() - foreign_before) /
                         ticks_per_second / (elapsed * cpus);
    if (rate.foreign_share < least_disturbed.foreign_share) least_disturbed = rate;
    if (rate.foreign_share <= kContendedShare) break;
  }
  return least_disturbed;
}

// Lets the previous library's spinning worker threads (OpenBLAS spins ~0.1 s after a call)
// go to sleep before the next library is timed.
void Settle() { std::this_thread::sleep_for(std::chrono::milliseconds(200)); }

// results[column][threads][case index]
using Results = std::map<std::string, std::map<int, std::map<size_t, Rate>>>;

constexpr int kThreadCounts[] = {1, 2};

// In a child: measure one column and print machine-readable rows for the parent.
int RunChild(const std::string& column, double min_seconds) {
  const Library* library = nullptr;
  for (const Library& l : Libraries()) library = l.column == column ? &l : library;
  if (library == nullptr) return 2;
  if (column.rfind("oblas", 0) == 0) std::printf("corename %s\n", openblas_get_corename());
  std::mt19937 rng(1);
  for (size_t i = 0; i < Cases().size(); ++i) {
    Operands x = MakeOperands(Cases()[i], rng);
    for (int threads : kThreadCounts) {
      SetThreads(threads);
      const Rate rate = Measure(Cases()[i], *library, x, min_seconds);
      std::printf("row %zu %d %.3f %.3f %.4f\n", i, threads, rate.median_gflops, rate.best_gflops,
                  rate.foreign_share);
      std::fflush(stdout);
    }
  }
  return 0;
}

std::string SelfPath() {
  char path[4096];
  const ssize_t length = readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (length <= 0) return "gemm_bench";
  path[length] = '\0';
  return path;
}

// Runs this program again with `environment` prepended, measuring `column` only.
void MeasureInChild(const Library& library, double min_seconds, Results& results,
                    std::map<std::string, std::string>& corenames) {
  const std::string command = "env " + library.child_environment + " '" + SelfPath() +
                              "' --child=" + library.column +
                              " --min-seconds=" + std::to_string(min_seconds);
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) {
    std::fprintf(stderr, "could not run: %s\n", command.c_str());
    return;
  }
  char line[512];
  while (std::fgets(line, sizeof(line), pipe) != nullptr) {
    size_t index;
    int threads;
    Rate rate;
    char name[256];
    if (std::sscanf(line, "row %zu %d %lf %lf %lf", &index, &threads, &rate.median_gflops,
                    &rate.best_gflops, &rate.foreign_share) == 5) {
      results[library.column][threads][index] = rate;
    } else if (std::sscanf(line, "corename %255s", name) == 1) {
      corenames[library.column] = name;
    }
  }
  if (pclose(pipe) != 0) std::fprintf(stderr, "child failed: %s\n", command.c_str());
}

int OsThreadsInProcess() {
  int count = 0;
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return -1;
  while (dirent* entry = readdir(dir)) count += entry->d_name[0] != '.';
  closedir(dir);
  return count;
}

// ops::Gemm called from both threads of an OpenMP parallel region, each on its own operands.
void ReportNestedBehaviour(double min_seconds) {
  const GemmCase g = Cases()[1];  // X[2048,256]·W[256,768]
  std::mt19937 rng(7);
  Operands per_thread[2] = {MakeOperands(g, rng), MakeOperands(g, rng)};
  const Library& ours = Libraries()[0];
  SetThreads(1);
  const Rate one_thread = Measure(g, ours, per_thread[0], min_seconds);
  SetThreads(2);
  const Rate two_threads = Measure(g, ours, per_thread[0], min_seconds);
  const int threads_before = OsThreadsInProcess();
  const int calls = 20;
  for (int levels : {1, 2}) {  // nested parallelism off (the default) and on
    omp_set_max_active_levels(levels);
    int threads_during = 0;
    const double seconds = Seconds([&] {
#pragma omp parallel num_threads(2)
      {
        for (int i = 0; i < calls; ++i) RunOurs(g, per_thread[omp_get_thread_num()]);
#pragma omp critical
        threads_during = std::max(threads_during, OsThreadsInProcess());
      }
    });
    const double per_call_gflops = 2.0 * g.m * g.n * g.k * calls / seconds / 1e9;
    std::printf(
        "inside omp parallel(2), max_active_levels=%d: each thread calls ops::Gemm on %s:\n"
        "  per thread %.0f GFLOP/s, aggregate %.0f GFLOP/s; OS threads before %d, during %d\n",
        levels, g.name, per_call_gflops, 2 * per_call_gflops, threads_before, threads_during);
  }
  omp_set_max_active_levels(1);
  std::printf("same shape outside a parallel region: 1 thread %.0f, 2 threads %.0f GFLOP/s\n",
              one_thread.median_gflops, two_threads.median_gflops);
}

int Main(int argc, char** argv) {
  double min_seconds = 0.4;
  int num_rounds = 3;
  std::string child;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--min-seconds=", 0) == 0) min_seconds = std::atof(arg.c_str() + 14);
    if (arg.rfind("--rounds=", 0) == 0) num_rounds = std::max(1, std::atoi(arg.c_str() + 9));
    if (arg.rfind("--child=", 0) == 0) child = arg.substr(8);
  }
  if (!child.empty()) return RunChild(child, min_seconds);

  for (const char* variable : {"OMP_NUM_THREADS", "OMP_PROC_BIND", "OMP_PLACES", "OMP_WAIT_POLICY",
                               "GOMP_SPINCOUNT", "DNNL_MAX_CPU_ISA", "ONEDNN_MAX_CPU_ISA"}) {
    if (const char* value = std::getenv(variable)) {
      std::printf("warning: %s=%s is set; the 'ours' column must be measured without it\n",
                  variable, value);
    }
  }
  std::printf("oneDNN %d.%d.%d, OpenBLAS '%s' (corename %s), Eigen %d.%d.%d, %d hardware threads\n",
              dnnl_version()->major, dnnl_version()->minor, dnnl_version()->patch,
              openblas_get_config(), openblas_get_corename(), EIGEN_WORLD_VERSION,
              EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION,
              static_cast<int>(std::thread::hardware_concurrency()));

  std::vector<Results> rounds;
  std::map<std::string, std::string> corenames;
  for (int round = 0; round < num_rounds; ++round) {
    Results& results = rounds.emplace_back();
    std::mt19937 rng(1);
    for (size_t i = 0; i < Cases().size(); ++i) {
      Operands x = MakeOperands(Cases()[i], rng);
      for (const Library& library : Libraries()) {
        if (!library.child_environment.empty()) continue;
        Settle();
        for (int threads : kThreadCounts) {
          SetThreads(threads);
          results[library.column][threads][i] = Measure(Cases()[i], library, x, min_seconds);
        }
      }
    }
    for (const Library& library : Libraries()) {
      if (library.child_environment.empty()) continue;
      Settle();
      MeasureInChild(library, min_seconds, results, corenames);
    }
    std::fprintf(stderr, "round %d of %d done\n", round + 1, num_rounds);
  }
  // Per cell: the median over rounds of each round's median, and the fastest rep of any round.
  Results results;
  for (const Library& library : Libraries()) {
    for (int threads : kThreadCounts) {
      for (size_t i = 0; i < Cases().size(); ++i) {
        std::vector<double> medians, foreign_shares;
        Rate& combined = results[library.column][threads][i];
        for (Results& round : rounds) {
          const Rate& rate = round[library.column][threads][i];
          medians.push_back(rate.median_gflops);
          foreign_shares.push_back(rate.foreign_share);
          combined.best_gflops = std::max(combined.best_gflops, rate.best_gflops);
        }
        std::sort(medians.begin(), medians.end());
        std::sort(foreign_shares.begin(), foreign_shares.end());
        combined.median_gflops = medians[medians.size() / 2];
        combined.foreign_share = foreign_shares[foreign_shares.size() / 2];
      }
    }
  }

  // ---- Table ----
  std::printf(
      "\nGFLOP/s: per round the median of timed reps after 2 warm-up calls; shown: the "
      "median over %d rounds (1t = 1 thread, 2t = 2 threads)\n",
      num_rounds);
  std::printf("%-38s", "case (M, N, K from the shapes)");
  for (const Library& library : Libraries()) {
    for (int threads : kThreadCounts) {
      std::printf(" %12s", (library.column + " " + std::to_string(threads) + "t").c_str());
    }
  }
  std::printf("\n");
  for (size_t i = 0; i < Cases().size(); ++i) {
    std::printf("%-38s", Cases()[i].name);
    for (const Library& library : Libraries()) {
      for (int threads : kThreadCounts) {
        const Rate& rate = results[library.column][threads][i];
        std::printf(" %11.0f%s", rate.median_gflops,
                    rate.foreign_share > kContendedShare ? "*" : " ");
      }
    }
    std::printf("\n");
  }
  std::printf("%-38s", "geomean over model shapes");
  for (const Library& library : Libraries()) {
    for (int threads : kThreadCounts) {
      double log_sum = 0.0;
      int count = 0;
      for (size_t i = 0; i < Cases().size(); ++i) {
        if (!Cases()[i].model_shape) continue;
        log_sum += std::log(std::max(1e-9, results[library.column][threads][i].median_gflops));
        ++count;
      }
      std::printf(" %11.0f ", std::exp(log_sum / count));
    }
  }
  std::printf("\n");
  std::printf(
      "* = other processes used more than %.0f%% of the machine while the cell was timed "
      "in most rounds\n",
      100 * kContendedShare);
  for (const auto& [column, name] : corenames) {
    std::printf("%s corename: %s\n", column.c_str(), name.c_str());
  }

  // ---- The ≥ 80 % check on 2048³, 2 threads ----
  // The library's best: its better configuration (default or pinned threads), same statistic
  // as ours (median over rounds).
  std::printf("\n2048^3, 2 threads, per round (ours / dnnl / dnnl+bind):");
  for (Results& round : rounds) {
    std::printf("  %.0f / %.0f / %.0f", round["ours"][2][0].median_gflops,
                round["dnnl"][2][0].median_gflops, round["dnnl+bind"][2][0].median_gflops);
  }
  std::printf("\nfastest single 2-thread 2048^3 rep per column:");
  for (const Library& library : Libraries()) {
    std::printf(" %s %.0f", library.column.c_str(), results[library.column][2][0].best_gflops);
  }
  const double ours = results["ours"][2][0].median_gflops;
  const double library_best =
      std::max(results["dnnl"][2][0].median_gflops, results["dnnl+bind"][2][0].median_gflops);
  std::printf("\ngemm_rate_2t_gflops %.1f\n", library_best);
  std::printf("ours_2t_2048_gflops %.1f\n", ours);
  std::printf("ours_fraction_of_library_best %.3f (%s: >= 0.80 required)\n", ours / library_best,
              ours >= 0.8 * library_best ? "PASS" : "FAIL");

  std::printf("\n");
  ReportNestedBehaviour(min_seconds);
  return 0;
}

}  // namespace
}  // namespace aoetron

int main(int argc, char** argv) { return aoetron::Main(argc, argv); }
