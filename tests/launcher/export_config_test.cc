// The export's config.json (launcher/export_config.h) and `inspect --config`'s annotated text:
// the tensor layout agrees with the model the config builds, a config that disagrees with the
// weights is refused, and the effective config shows defaults beside the fields a run set.
#include "launcher/export_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "launcher/config_conversion.h"
#include "launcher/config_loader.h"
#include "models/gpt_model.h"

namespace aoetron {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

config::TrainConfig SmallConfig(config::ModelSection::Ffn ffn) {
  config::TrainConfig run;
  config::ModelSection& m = *run.mutable_model();
  m.set_vocab_size(64);
  m.set_d_model(32);
  m.set_n_layers(2);
  m.set_n_heads(4);
  m.set_seq_len(16);
  m.set_d_ffn(48);
  m.set_n_experts(4);
  m.set_top_k(2);
  m.set_d_low(8);
  m.set_ffn(ffn);
  m.set_granularity(2);
  m.set_n_shared_experts(1);
  m.set_expert_bias_rate(0.01);
  return run;
}

std::map<std::string, Shape> ModelShapes(const ModelConfig& c) {
  GptModel model(c);
  std::map<std::string, Shape> shapes;
  for (const Parameter& p : model.parameters().all()) shapes[p.name] = p.global_shape;
  return shapes;
}

TEST(ExportConfigTest, LayoutIsExactlyTheModelsParameters) {
  for (auto ffn :
       {config::ModelSection::dense, config::ModelSection::moe, config::ModelSection::aoe}) {
    const ModelConfig c = ModelConfigFromConfig(SmallConfig(ffn));
    EXPECT_EQ(ExpectedParameterShapes(c), ModelShapes(c)) << FfnKindName(c.ffn);
    EXPECT_TRUE(CheckParametersMatchConfig(c, ModelShapes(c)).ok());
  }
}

TEST(ExportConfigTest, ConfigThatDisagreesWithTheWeightsIsRefused) {
  const ModelConfig c = ModelConfigFromConfig(SmallConfig(config::ModelSection::moe));
  std::map<std::string, Shape> saved = ModelShapes(c);
  saved["layers.1.attn.w_qkv"] = {32, 96};
  EXPECT_THAT(CheckParametersMatchConfig(c, saved).message(),
              HasSubstr("'layers.1.attn.w_qkv' has shape [32, 96] in the checkpoint"));
  saved = ModelShapes(c);
  saved.erase("layers.0.ffn.experts.7.w_o");
  EXPECT_THAT(CheckParametersMatchConfig(c, saved).message(),
              HasSubstr("'layers.0.ffn.experts.7.w_o'"));
  saved = ModelShapes(c);
  saved["layers.0.ffn.experts.8.w_o"] = {24, 32};
  EXPECT_THAT(CheckParametersMatchConfig(c, saved).message(), HasSubstr("does not describe"));
}

TEST(ExportConfigTest, JsonHasUsersAndResolvedValues) {
  const std::string json =
      ExportConfigJson(SmallConfig(config::ModelSection::moe), 7, DType::kBF16);
  EXPECT_THAT(json, HasSubstr("\n  \"n_experts\": 4,\n"));
  EXPECT_THAT(json, HasSubstr("\n  \"n_routed_experts\": 8,\n"));
  EXPECT_THAT(json, HasSubstr("\n  \"routed_top_k\": 4,\n"));
  EXPECT_THAT(json, HasSubstr("\n  \"aux_loss_load_fraction_sum\": 4,\n"));
  EXPECT_THAT(json, HasSubstr("\n  \"d_expert_resolved\": 24,\n"));
  EXPECT_THAT(json, HasSubstr("\n  \"rope_theta\": 10000,\n"));  // a default, never set
  EXPECT_THAT(json, HasSubstr("\n  \"torch_dtype\": \"bfloat16\",\n"));
  EXPECT_THAT(json, HasSubstr("\"layers.{l}.attn.w_qkv\": {\"shape\":[32, 3, 32]"));
}

TEST(ExportConfigTest, AnnotatedConfigMarksOnlyWhatTheRunSet) {
  const std::string text = AnnotatedResolvedConfigText(SmallConfig(config::ModelSection::aoe));
  EXPECT_THAT(text, HasSubstr("\n  d_model: 32  # set\n"));
  EXPECT_THAT(text, HasSubstr("\n  rope_theta: 10000\n"));
  // A section the run never mentioned: every field, none marked.
  const size_t optimizer = text.find("optimizer {\n");
  ASSERT_NE(optimizer, std::string::npos);
  const std::string section = text.substr(optimizer, text.find("}\n", optimizer) - optimizer);
  EXPECT_THAT(section, HasSubstr("beta1: "));
  EXPECT_THAT(section, Not(HasSubstr("# set")));
  // Still text format: it parses back to the effective config.
  absl::StatusOr<config::TrainConfig> back = ParseTrainConfigText(text, "annotated");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(ResolvedConfigText(*back), ResolvedConfigText(SmallConfig(config::ModelSection::aoe)));
}

}  // namespace
}  // namespace aoetron
