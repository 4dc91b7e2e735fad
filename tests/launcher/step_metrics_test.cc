// Step metrics: merging expert load over micro-batches, and the JSON / human renderings.
#include "launcher/step_metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "json_test_util.h"
#include "launcher/json_writer.h"

namespace aoetron {
namespace {

using ::testing::HasSubstr;

ExpertLoadStats Stats(std::vector<int64_t> counts, double ent_conf, double aux) {
  ExpertLoadStats stats;
  stats.tokens_per_expert = std::move(counts);
  stats.entropy_confidence = ent_conf;
  stats.aux_loss = aux;
  return stats;
}

TEST(SummariseExpertLoadTest, CountsAreSummedOverMicroBatches) {
  // Layer 0: [3, 1] + [1, 3] = [4, 4]: perfectly balanced over the step although neither
  // micro-batch was. Layer 1: [2, 0] + [2, 0]: everything on expert 0.
  const std::vector<std::vector<ExpertLoadStats>> per_micro_batch = {
      {Stats({3, 1}, 0.5, 0.02), Stats({2, 0}, 0.1, 0.04)},
      {Stats({1, 3}, 0.7, 0.04), Stats({2, 0}, 0.3, 0.02)}};
  const std::vector<LayerLoadSummary> summary = SummariseExpertLoad(per_micro_batch);
  ASSERT_EQ(summary.size(), 2u);
  EXPECT_DOUBLE_EQ(summary[0].load_min, 0.5);
  EXPECT_DOUBLE_EQ(summary[0].load_max, 0.5);
  EXPECT_NEAR(summary[0].ent_load, std::log(2.0), 1e-12);
  EXPECT_NEAR(summary[0].ent_conf, 0.6, 1e-12);
  EXPECT_NEAR(summary[0].aux_loss, 0.03, 1e-12);
  EXPECT_DOUBLE_EQ(summary[1].load_min, 0.0);
  EXPECT_DOUBLE_EQ(summary[1].load_max, 1.0);
  EXPECT_DOUBLE_EQ(summary[1].ent_load, 0.0);               // 0·ln 0 counts as 0
  EXPECT_TRUE(SummariseExpertLoad({}).empty());             // dense model
  EXPECT_DOUBLE_EQ(summary[0].ep_load_max_over_mean, 1.0);  // ep 1
}

TEST(SummariseExpertLoadTest, LoadOverExpertParallelRanks) {
  // 4 experts on 2 ep ranks: rank 0 holds experts 0–1, rank 1 experts 2–3. Step counts
  // [5, 3, 1, 3] → rank loads 8 and 4, max/mean = 8 / 6.
  const std::vector<std::vector<ExpertLoadStats>> per_micro_batch = {
      {Stats({4, 1, 1, 2}, 0.5, 0.01)}, {Stats({1, 2, 0, 1}, 0.5, 0.01)}};
  EXPECT_DOUBLE_EQ(SummariseExpertLoad(per_micro_batch, 2)[0].ep_load_max_over_mean, 8.0 / 6.0);
  // One expert per rank: max 5 over mean 3.
  EXPECT_DOUBLE_EQ(SummariseExpertLoad(per_micro_batch, 4)[0].ep_load_max_over_mean, 5.0 / 3.0);
}

StepMetrics SampleMetrics() {
  StepMetrics m;
  m.step = 20;
  m.total_steps = 100;
  m.loss = 3.25;
  m.aux_loss = 0.02;
  m.grad_norm = 0.75;
  m.lr = 3e-4;
  m.tokens = 40960;
  m.step_seconds = 0.125;
  m.tokens_per_s = 16384;
  m.model_flops_per_s = 2.5e11;
  m.comm.ep = 0.0125;
  m.comm.dp = 0.00625;
  m.comm.world = 0.00025;
  m.layers = {{0.1, 0.2, 2.0, 1.9, 0.01}, {0.05, 0.3, 1.8, 1.7, 0.01}};
  return m;
}

TEST(StepMetricsJsonTest, HasEveryKeyWithPerLayerArrays) {
  StepMetrics m = SampleMetrics();
  m.val_loss = 3.5;
  absl::StatusOr<google::protobuf::Struct> json = testing::ParseJsonObject(StepMetricsJson(m));
  ASSERT_TRUE(json.ok()) << json.status();
  const auto& f = json->fields();
  EXPECT_EQ(f.at("step").number_value(), 20);
  EXPECT_EQ(f.at("loss").number_value(), 3.25);
  EXPECT_EQ(f.at("aux_loss").number_value(), 0.02);
  EXPECT_EQ(f.at("grad_norm").number_value(), 0.75);
  EXPECT_EQ(f.at("lr").number_value(), 3e-4);
  EXPECT_EQ(f.at("tokens").number_value(), 40960);
  EXPECT_EQ(f.at("tokens_per_s").number_value(), 16384);
  EXPECT_EQ(f.at("model_tflops").number_value(), 0.25);
  EXPECT_EQ(f.at("step_ms").number_value(), 125);
  EXPECT_EQ(f.at("comm_ms").number_value(), 19);  // 12.5 + 6.25 + 0.25
  EXPECT_EQ(f.at("comm_ep_ms").number_value(), 12.5);
  EXPECT_EQ(f.at("comm_dp_ms").number_value(), 6.25);
  EXPECT_EQ(f.at("comm_world_ms").number_value(), 0.25);
  EXPECT_EQ(f.at("comm_tp_ms").number_value(), 0);
  EXPECT_EQ(f.at("comm_edp_ms").number_value(), 0);
  EXPECT_EQ(f.at("val_loss").number_value(), 3.5);
  ASSERT_EQ(f.at("load_min").list_value().values_size(), 2);
  EXPECT_EQ(f.at("load_min").list_value().values(1).number_value(), 0.05);
  EXPECT_EQ(f.at("load_max").list_value().values(1).number_value(), 0.3);
  EXPECT_EQ(f.at("ent_load").list_value().values(0).number_value(), 2.0);
  EXPECT_EQ(f.at("ent_conf").list_value().values(0).number_value(), 1.9);
  EXPECT_EQ(f.at("layer_aux_loss").list_value().values_size(), 2);
  EXPECT_EQ(f.at("ep_load_max_over_mean").list_value().values_size(), 2);
  EXPECT_EQ(f.count("ep_dispatch_payload_bytes"), 0u);  // only with expert parallelism
}

TEST(StepMetricsJsonTest, DispatchFiguresWithExpertParallelism) {
  StepMetrics m = SampleMetrics();
  m.dispatch = DispatchSummary{8.4e6, 8.3e6, 17.1e6, 17.5e6};
  absl::StatusOr<google::protobuf::Struct> json = testing::ParseJsonObject(StepMetricsJson(m));
  ASSERT_TRUE(json.ok()) << json.status();
  const auto& f = json->fields();
  EXPECT_EQ(f.at("ep_dispatch_payload_bytes").number_value(), 8.4e6);
  EXPECT_EQ(f.at("ep_dispatch_minimum_bytes").number_value(), 8.3e6);
  EXPECT_EQ(f.at("ep_exchange_bytes").number_value(), 17.1e6);
  EXPECT_EQ(f.at("ep_exchange_bytes_max").number_value(), 17.5e6);
  m.layers[1].ep_load_max_over_mean = 1.0625;
  EXPECT_THAT(StepMetricsProgressLine(m),
              HasSubstr("| ep 8.40 MB/rank (min 8.30), all 17.10 MB, ranks ×1.062"));
}

TEST(StepMetricsJsonTest, NonFiniteValuesAreNullAndValLossOnlyWhenEvaluated) {
  StepMetrics m = SampleMetrics();
  m.loss = std::numeric_limits<double>::quiet_NaN();
  m.grad_norm = std::numeric_limits<double>::infinity();
  const std::string line = StepMetricsJson(m);
  absl::StatusOr<google::protobuf::Struct> json = testing::ParseJsonObject(line);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_TRUE(json->fields().at("loss").has_null_value());
  EXPECT_TRUE(json->fields().at("grad_norm").has_null_value());
  EXPECT_EQ(json->fields().count("val_loss"), 0u);
  EXPECT_EQ(line.find('\n'), std::string::npos);  // one line
}

TEST(StepMetricsProgressLineTest, CondensesLayersForHumans) {
  StepMetrics m = SampleMetrics();
  m.val_loss = 3.5;
  const std::string line = StepMetricsProgressLine(m);
  EXPECT_THAT(line, HasSubstr("step  20/100"));
  EXPECT_THAT(line, HasSubstr("loss 3.2500"));
  EXPECT_THAT(line, HasSubstr("125.0 ms (comm 19.0: ep 12.5 dp 6.2 world 0.2)"));  // groups used
  EXPECT_THAT(line, HasSubstr("load 0.050..0.300"));  // min of mins, max of maxes
  EXPECT_THAT(line, HasSubstr("Ent_load 1.900"));     // mean over layers
  EXPECT_THAT(line, HasSubstr("val_loss 3.5000"));
}

TEST(JsonWriterTest, EscapesStrings) {
  const std::string json =
      JsonObjectWriter().String("path", "a\"b\\c\nd\x01").Integer("n", -3).Finish();
  EXPECT_EQ(json, R"({"path":"a\"b\\c\nd\u0001","n":-3})");
  EXPECT_TRUE(testing::ParseJsonObject(json).ok());
}

}  // namespace
}  // namespace aoetron
