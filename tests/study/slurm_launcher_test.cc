// SlurmLauncher's reading of scontrol's job records (launcher/study/slurm_launcher.h), and
// RunCommand. The launcher against a real Slurm: tests/slurm/run_slurm_study.sh.
#include "launcher/study/slurm_launcher.h"

#include <gtest/gtest.h>

#include "launcher/study/command_output.h"

namespace aoetron::study {
namespace {

std::string Record(const std::string& state, const std::string& exit_code) {
  return "JobId=12 JobName=moe-n8 UserId=root(0) Priority=1 JobState=" + state +
         " Reason=None Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 ExitCode=" + exit_code +
         " RunTime=00:00:05\n";
}

TEST(SlurmLauncherTest, LiveStatesHaveNoExit) {
  for (const char* state : {"PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "REQUEUED",
                            "SUSPENDED", "REQUEUE_HOLD"}) {
    EXPECT_FALSE(JobExitFromScontrol(Record(state, "0:0")).has_value()) << state;
  }
}

TEST(SlurmLauncherTest, EndedStatesGiveTheExit) {
  std::optional<JobExit> done = JobExitFromScontrol(Record("COMPLETED", "0:0"));
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(done->exit_code, 0);
  EXPECT_EQ(done->signal, 0);

  std::optional<JobExit> failed = JobExitFromScontrol(Record("FAILED", "1:0"));
  ASSERT_TRUE(failed.has_value());
  EXPECT_EQ(failed->exit_code, 1);

  std::optional<JobExit> killed = JobExitFromScontrol(Record("CANCELLED", "0:9"));
  ASSERT_TRUE(killed.has_value());
  EXPECT_EQ(killed->exit_code, -1);
  EXPECT_EQ(killed->signal, 9);

  // A job that ran out of time or lost its node never counts as a success, whatever the
  // script's status.
  for (const char* state : {"TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY"}) {
    std::optional<JobExit> ended = JobExitFromScontrol(Record(state, "0:0"));
    ASSERT_TRUE(ended.has_value()) << state;
    EXPECT_EQ(ended->exit_code, -1) << state;
  }
}

TEST(SlurmLauncherTest, NotARecordIsAskedAgain) {
  EXPECT_FALSE(JobExitFromScontrol("").has_value());
  EXPECT_FALSE(JobExitFromScontrol("slurm_load_jobs error: Unable to contact").has_value());
}

TEST(RunCommandTest, CollectsOutputStatusAndEnvironment) {
  absl::StatusOr<CommandOutput> ran =
      RunCommand({"/bin/sh", "-c", "echo \"out $AOETRON_TEST_VALUE\"; echo err >&2; exit 3"},
                 {"AOETRON_TEST_VALUE=42"});
  ASSERT_TRUE(ran.ok()) << ran.status();
  EXPECT_EQ(ran->exit_code, 3);
  EXPECT_EQ(ran->out, "out 42\n");
  EXPECT_EQ(ran->err, "err\n");

  absl::StatusOr<CommandOutput> missing = RunCommand({"aoetron-no-such-program"});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("cannot run aoetron-no-such-program"),
            std::string::npos)
      << missing.status();
}

}  // namespace
}  // namespace aoetron::study
