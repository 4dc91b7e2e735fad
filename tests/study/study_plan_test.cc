// Study specs and plans (launcher/study/study_plan.h): what a spec expands to, and every kind of
// bad spec refused with an error naming the field (and the point).
#include "launcher/study/study_plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "json_test_util.h"
#include "launcher/study/metrics_reader.h"
#include "launcher/study/study_spec.h"

namespace aoetron::study {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

const std::string kTiny = std::string(AOETRON_SOURCE_DIR) + "/configs/tiny_aoe.textproto";

absl::StatusOr<StudyPlan> Plan(const std::string& body) {
  const std::string text = "name: \"t\" base_config: \"" + kTiny + "\"\n" + body;
  absl::StatusOr<StudySpec> spec = ParseStudySpecText(text, "spec.textproto");
  if (!spec.ok()) return spec.status();
  return MakeStudyPlan(*spec, "/tmp/spec.textproto");
}

std::string Error(const std::string& body) {
  absl::StatusOr<StudyPlan> plan = Plan(body);
  return plan.ok() ? "(no error)" : std::string(plan.status().message());
}

TEST(StudyPlanTest, AxesExpandToAProductAndDenseCollapses) {
  absl::StatusOr<StudyPlan> plan = Plan(
      "axes { ffn: \"dense\" ffn: \"moe\" ffn: \"aoe\" n_experts: 4 n_experts: 8 seed: 1 seed: 2 }"
      "matching { hold: \"active_params\" reference { ffn: \"dense\" } }");
  ASSERT_TRUE(plan.ok()) << plan.status();
  // dense × 2 seeds, moe and aoe × 2 n × 2 seeds.
  ASSERT_EQ(plan->runs.size(), 10u);
  EXPECT_EQ(plan->runs[0].name, "dense-seed1");
  EXPECT_EQ(plan->runs[2].name, "moe-n4-g1-k2-seed1");
  EXPECT_EQ(plan->runs[9].name, "aoe-n8-g1-k2-r16-seed2");
  EXPECT_EQ(plan->runs[9].config.train().seed(), 2u);
  EXPECT_EQ(plan->runs[9].family, "aoe G1 K2 r16");
  EXPECT_EQ(plan->runs[9].model_family, "aoe n8 G1 K2 r16");
  EXPECT_FALSE(plan->runs[0].width_derived);  // the reference itself keeps its width
  for (const PlannedRun& run : plan->runs) {
    // Every point's active parameters within one rounding step of the dense reference's.
    const double step = run.ffn == "aoe" ? 2 * (16 + 2 * 64) * 64.0 : 2 * 3 * 64 * 64.0;
    EXPECT_LE(std::fabs(static_cast<double>(run.active_params - plan->target)), 2 * step)
        << run.name;
  }
}

TEST(StudyPlanTest, BudgetsSetSteps) {
  absl::StatusOr<StudyPlan> plan =
      Plan("overrides: \"schedule.warmup_steps=0\" axes { ffn: \"moe\" tokens: 5000 }");
  ASSERT_TRUE(plan.ok()) << plan.status();
  // 8 sequences of 64 tokens per step: ceil(5000 / 512) = 10 steps.
  EXPECT_EQ(plan->runs[0].steps, 10);
  EXPECT_EQ(plan->runs[0].tokens, 5120);
  EXPECT_EQ(plan->runs[0].name, "moe-n4-g1-k2-tok5k");
  plan = Plan("overrides: \"schedule.warmup_steps=0\" axes { ffn: \"aoe\" flops: 1e10 }");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->runs[0].steps, std::llround(1e10 / plan->runs[0].flops_per_token / 512.0));
}

TEST(StudyPlanTest, BadSpecsNameTheField) {
  // An unknown axis.
  EXPECT_THAT(Error("axes { n_expert: 4 }"),
              AllOf(HasSubstr("unknown field \"axes.n_expert\""), HasSubstr("n_experts")));
  // An unknown axis value.
  EXPECT_THAT(Error("axes { ffn: \"moe\" ffn: \"mixture\" }"),
              HasSubstr("axes.ffn: unknown value \"mixture\"; valid values: dense, moe, aoe"));
  EXPECT_THAT(Error("axes { balancing: \"loss_free\" }"),
              HasSubstr("axes.balancing: unknown value \"loss_free\""));
  EXPECT_THAT(Error("matching { hold: \"params\" }"),
              HasSubstr("matching.hold: unknown value \"params\""));
  // A point that cannot be matched: AoE's scoring alone (d·n·r per layer) is above the dense
  // reference's active parameters.
  EXPECT_THAT(Error("axes { ffn: \"aoe\" n_experts: 4 n_experts: 64 d_low: 64 }"
                    "matching { hold: \"active_params\" reference { ffn: \"dense\" } }"),
              AllOf(HasSubstr("point \"aoe-n64-g1-k2-r64\""), HasSubstr("model.d_wide"),
                    HasSubstr("cannot hold active_params")));
  // A resulting TrainConfig that ValidateTrainConfig refuses.
  EXPECT_THAT(Error("point { name: \"wide\" ffn: \"moe\" top_k: 9 }"),
              AllOf(HasSubstr("point \"wide\" (point[0])"),
                    HasSubstr("model.top_k (9) must be ≤ model.n_experts (4)")));
  EXPECT_THAT(
      Error("point { ffn: \"moe\" overrides: \"model.n_layer=3\" }"),
      AllOf(HasSubstr("point[0].overrides[0]: "), HasSubstr("unknown field \"model.n_layer\"")));
  // A missing dataset, in the base config or in one point.
  EXPECT_THAT(Error("overrides: \"data.source=indexed\" overrides: \"data.datasets=/no/such/ds\""),
              AllOf(HasSubstr("data.datasets"), HasSubstr("/no/such/ds")));
  EXPECT_THAT(Error("point { name: \"p\" overrides: \"data.source=token_file\" overrides: "
                    "\"data.token_file_path=/no/such.bin\" }"),
              AllOf(HasSubstr("point \"p\""), HasSubstr("data.token_file_path"),
                    HasSubstr("/no/such.bin")));
  // Names.
  EXPECT_THAT(Error("point { name: \"a\" } point { name: \"a\" ffn: \"moe\" }"),
              HasSubstr("point[1].name: \"a\" is also the name of point[0]"));
  EXPECT_THAT(Error("axes { ffn: \"moe\" } point { ffn: \"aoe\" }"), HasSubstr("not both"));
  EXPECT_THAT(Error("execution { ranks: 2 } overrides: \"parallel.tp=4\""),
              HasSubstr("parallel.tp"));
}

TEST(MetricsReaderTest, LastLineOfAStepWinsAndAPartialLineWaits) {
  const std::string dir = testing::MakeTempDir("metrics_reader");
  const std::string path = dir + "/metrics.jsonl";
  {
    std::ofstream out(path);
    out << R"({"step":1,"loss":5,"tokens":10,"load_max":[0.5,0.7],"ent_load":[1,2]})"
        << "\n"
        << R"({"step":2,"loss":4,"tokens":20})"
        << "\n"
        << R"({"step":2,"loss":3.5,"tokens":20,"val_loss":3.25})"
        << "\n"
        << R"({"step":3,"lo)";
  }
  absl::StatusOr<std::vector<MetricsRecord>> records = ReadMetricsFile(path);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 2u);
  EXPECT_EQ((*records)[1].loss, 3.5);
  EXPECT_EQ((*records)[1].val_loss, 3.25);
  EXPECT_EQ((*records)[0].load_max, (std::vector<double>{0.5, 0.7}));
  MetricsTail tail(path);
  EXPECT_EQ(tail.ReadNew().size(), 3u);
  std::ofstream(path, std::ios::app) << R"(ss":3,"tokens":30})"
                                     << "\n";
  const std::vector<MetricsRecord> next = tail.ReadNew();
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].step, 3);
}

}  // namespace
}  // namespace aoetron::study
