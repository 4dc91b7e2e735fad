// Config loading: defaults, text files, --set overrides through reflection, and that every
// error names what the user wrote.
#include "launcher/config_loader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "json_test_util.h"
#include "launcher/config_conversion.h"
#include "launcher/config_json.h"
#include "launcher/config_validation.h"

namespace aoetron {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string WriteConfig(const std::string& name, const std::string& text) {
  const std::string path = testing::MakeTempDir("config") + "/" + name;
  std::ofstream(path) << text;
  return path;
}

std::string ErrorOf(const absl::Status& status) {
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  return std::string(status.message());
}

template <typename T>
std::string ErrorOf(const absl::StatusOr<T>& result) {
  return ErrorOf(result.status());
}

TEST(ConfigLoaderTest, DefaultsWhenNothingIsSet) {
  absl::StatusOr<config::TrainConfig> loaded = LoadTrainConfig("", {});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->model().vocab_size(), 8192);
  EXPECT_EQ(loaded->model().ffn(), config::ModelSection::aoe);
  EXPECT_EQ(loaded->model().aoe_gate(), config::ModelSection::paper);
  EXPECT_DOUBLE_EQ(loaded->optimizer().lr(), 3e-4);
  EXPECT_DOUBLE_EQ(loaded->optimizer().beta2(), 0.95);
  EXPECT_EQ(loaded->schedule().decay(), config::ScheduleSection::cosine);
  EXPECT_EQ(loaded->data().source(), config::DataSection::synthetic);
  EXPECT_EQ(loaded->train().steps(), 1000);
  EXPECT_EQ(loaded->parallel().tp(), 1);
  EXPECT_EQ(loaded->logging().interval(), 10);
  EXPECT_EQ(loaded->logging().progress(), config::LoggingSection::auto_);
}

// The schema's defaults and models/' own defaults describe the same model.
TEST(ConfigLoaderTest, SchemaDefaultsMatchModelConfigDefaults) {
  const ModelConfig from_schema = ModelConfigFromConfig(config::TrainConfig());
  const ModelConfig plain;
  EXPECT_EQ(from_schema.vocab_size, plain.vocab_size);
  EXPECT_EQ(from_schema.d_model, plain.d_model);
  EXPECT_EQ(from_schema.n_layers, plain.n_layers);
  EXPECT_EQ(from_schema.n_heads, plain.n_heads);
  EXPECT_EQ(from_schema.seq_len, plain.seq_len);
  EXPECT_EQ(from_schema.d_ffn, plain.d_ffn);
  EXPECT_EQ(from_schema.ffn, plain.ffn);
  EXPECT_EQ(from_schema.n_experts, plain.n_experts);
  EXPECT_EQ(from_schema.top_k, plain.top_k);
  EXPECT_EQ(from_schema.d_low, plain.d_low);
  EXPECT_EQ(from_schema.d_wide, plain.d_wide);
  EXPECT_EQ(from_schema.aoe_gate, plain.aoe_gate);
  EXPECT_EQ(from_schema.aoe_memory, plain.aoe_memory);
  EXPECT_EQ(from_schema.aoe_score_block, plain.aoe_score_block);
  EXPECT_DOUBLE_EQ(from_schema.aux_loss_coeff, plain.aux_loss_coeff);
  EXPECT_DOUBLE_EQ(from_schema.rope_theta, plain.rope_theta);
  EXPECT_DOUBLE_EQ(from_schema.norm_eps, plain.norm_eps);
  EXPECT_DOUBLE_EQ(from_schema.init_std, plain.init_std);
}

TEST(ConfigLoaderTest, AoeMemoryModeConverts) {
  config::TrainConfig c;
  c.mutable_model()->set_aoe_memory(config::ModelSection::blockwise);
  c.mutable_model()->set_aoe_score_block(16);
  const ModelConfig model = ModelConfigFromConfig(c);
  EXPECT_EQ(model.aoe_memory, AoeMemory::kBlockwise);
  EXPECT_EQ(model.aoe_score_block, 16);
}

TEST(ConfigLoaderTest, FileThenOverridesInOrderLastOneWins) {
  const std::string path = WriteConfig("run.textproto", R"(
# comment
model { n_layers: 6 ffn: moe d_model: 128 n_heads: 4 }
optimizer { lr: 1e-3 }
train { steps: 500 }
)");
  absl::StatusOr<config::TrainConfig> loaded =
      LoadTrainConfig(path, {"train.steps=20", "model.n_layers=3", "train.steps=30",
                             "schedule.decay=wsd", "data.seed=7", "optimizer.lr=2.5e-3"});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->train().steps(), 30);  // the last --set for a field wins
  EXPECT_EQ(loaded->model().n_layers(), 3);
  EXPECT_EQ(loaded->model().ffn(), config::ModelSection::moe);  // from the file
  EXPECT_EQ(loaded->model().d_model(), 128);                    // from the file
  EXPECT_EQ(loaded->schedule().decay(), config::ScheduleSection::wsd);
  EXPECT_EQ(loaded->data().seed(), 7u);
  EXPECT_DOUBLE_EQ(loaded->optimizer().lr(), 2.5e-3);
  EXPECT_EQ(loaded->model().vocab_size(), 8192);  // untouched default
}

TEST(ConfigLoaderTest, OverrideKeepsCommasAndStripsQuotesFromStrings) {
  config::TrainConfig c;
  ASSERT_TRUE(ApplyConfigOverride("logging.metrics_file=\"/tmp/a,b.jsonl\"", &c).ok());
  EXPECT_EQ(c.logging().metrics_file(), "/tmp/a,b.jsonl");
  ASSERT_TRUE(ApplyConfigOverride("checkpoint.dir=runs/x=y", &c).ok());  // first '=' splits
  EXPECT_EQ(c.checkpoint().dir(), "runs/x=y");
}

TEST(ConfigLoaderTest, UnknownOverrideFieldNamesThePathAndListsValidFields) {
  config::TrainConfig c;
  const std::string error = ErrorOf(ApplyConfigOverride("model.n_layer=3", &c));
  EXPECT_THAT(error, HasSubstr("\"model.n_layer\""));
  EXPECT_THAT(error, HasSubstr("n_layers"));
  EXPECT_THAT(error, HasSubstr("top_k"));

  const std::string section_error = ErrorOf(ApplyConfigOverride("modle.n_layers=3", &c));
  EXPECT_THAT(section_error, HasSubstr("\"modle\""));
  EXPECT_THAT(section_error, HasSubstr("model, optimizer, schedule"));
}

TEST(ConfigLoaderTest, WrongOverrideTypeNamesThePathAndTheExpectedType) {
  config::TrainConfig c;
  std::string error = ErrorOf(ApplyConfigOverride("model.n_layers=abc", &c));
  EXPECT_THAT(error, HasSubstr("model.n_layers expects an integer"));
  error = ErrorOf(ApplyConfigOverride("model.n_layers=2.5", &c));
  EXPECT_THAT(error, HasSubstr("model.n_layers expects an integer"));
  error = ErrorOf(ApplyConfigOverride("optimizer.lr=fast", &c));
  EXPECT_THAT(error, HasSubstr("optimizer.lr expects a number"));
  error = ErrorOf(ApplyConfigOverride("data.seed=-3", &c));
  EXPECT_THAT(error, HasSubstr("data.seed expects a non-negative integer"));
  error = ErrorOf(ApplyConfigOverride("schedule.decay=exponential", &c));
  EXPECT_THAT(error, HasSubstr("schedule.decay expects one of constant, cosine, linear, wsd"));
  error = ErrorOf(ApplyConfigOverride("model=3", &c));
  EXPECT_THAT(error, HasSubstr("model is a section"));
  error = ErrorOf(ApplyConfigOverride("model.n_layers.x=3", &c));
  EXPECT_THAT(error, HasSubstr("model.n_layers is a field"));
  error = ErrorOf(ApplyConfigOverride("n_layers", &c));
  EXPECT_THAT(error, HasSubstr("section.field=value"));
  // A failed override leaves the field as it was.
  EXPECT_FALSE(c.model().has_n_layers());
}

TEST(ConfigLoaderTest, FileParseErrorsNameFileLineAndColumn) {
  const std::string path =
      WriteConfig("bad_field.textproto", "model {\n  d_model: 128\n  n_layer: 3\n}\n");
  std::string error = ErrorOf(ReadTrainConfigFile(path));
  EXPECT_THAT(error, HasSubstr(path + ":3:"));
  EXPECT_THAT(error, HasSubstr("unknown field \"model.n_layer\""));
  EXPECT_THAT(error, HasSubstr("n_layers"));

  const std::string typed = WriteConfig("bad_type.textproto", "train {\n  steps: \"many\"\n}\n");
  error = ErrorOf(ReadTrainConfigFile(typed));
  EXPECT_THAT(error, HasSubstr(typed + ":2:10:"));
  EXPECT_THAT(error, HasSubstr("Expected integer"));
  EXPECT_THAT(error, HasSubstr("steps: \"many\""));  // the offending line is quoted

  const std::string enum_value = WriteConfig("bad_enum.textproto", "model { ffn: mixture }\n");
  error = ErrorOf(ReadTrainConfigFile(enum_value));
  EXPECT_THAT(error, HasSubstr(enum_value + ":1:"));
  EXPECT_THAT(error,
              HasSubstr("model.ffn: unknown value \"mixture\"; valid values: dense, moe, aoe"));

  const std::string top = WriteConfig("bad_section.textproto", "trainer { steps: 3 }\n");
  error = ErrorOf(ReadTrainConfigFile(top));
  EXPECT_THAT(error, HasSubstr("unknown field \"trainer\"; valid fields of the config: model"));
}

TEST(ConfigLoaderTest, MissingFileIsNamed) {
  const std::string error = ErrorOf(LoadTrainConfig("/nonexistent/dir/run.textproto", {}));
  EXPECT_THAT(error, HasSubstr("/nonexistent/dir/run.textproto"));
}

TEST(ConfigLoaderTest, LoadValidatesAfterOverrides) {
  const std::string error = ErrorOf(LoadTrainConfig("", {"model.top_k=9"}));
  EXPECT_THAT(error, HasSubstr("model.top_k (9) must be ≤ model.n_experts (8)"));
  // ... and an override can repair what the file got wrong.
  const std::string path = WriteConfig("fixable.textproto", "model { top_k: 9 }\n");
  EXPECT_TRUE(LoadTrainConfig(path, {"model.n_experts=16"}).ok());
}

TEST(ConfigLoaderTest, EveryShippedConfigLoads) {
  for (const char* name : {"tiny_aoe", "bench_aoe_small", "bench_moe_small", "bench_dense_small"}) {
    const std::string path = std::string(AOETRON_SOURCE_DIR) + "/configs/" + name + ".textproto";
    absl::StatusOr<config::TrainConfig> loaded = LoadTrainConfig(path, {});
    EXPECT_TRUE(loaded.ok()) << name << ": " << loaded.status();
  }
}

TEST(ConfigLoaderTest, ResolvedTextListsDefaultsAndRoundTrips) {
  absl::StatusOr<config::TrainConfig> loaded = LoadTrainConfig("", {"model.n_layers=7"});
  ASSERT_TRUE(loaded.ok());
  const std::string text = ResolvedConfigText(*loaded);
  EXPECT_THAT(text, HasSubstr("vocab_size: 8192"));  // a default, written out
  EXPECT_THAT(text, HasSubstr("n_layers: 7"));
  EXPECT_THAT(text, HasSubstr("progress: auto"));
  absl::StatusOr<config::TrainConfig> reparsed = ParseTrainConfigText(text, "resolved");
  ASSERT_TRUE(reparsed.ok()) << reparsed.status();
  EXPECT_EQ(reparsed->SerializeAsString(), WithDefaultsMaterialised(*loaded).SerializeAsString());
}

// The accumulation is derived from the global batch and the data-parallel size; the resolved
// text of a 2-rank config must still load on 1 rank (and on 4).
TEST(ConfigLoaderTest, ResolvedTextLeavesDerivedAccumulationToTheLayout) {
  absl::StatusOr<config::TrainConfig> two_ranks = LoadTrainConfig(
      "", {"train.micro_batch_size=2", "train.global_batch_size=8"}, /*world_size=*/2);
  ASSERT_TRUE(two_ranks.ok()) << two_ranks.status();
  const std::string text = ResolvedConfigText(*two_ranks);
  EXPECT_THAT(text, Not(HasSubstr("grad_accum_steps")));
  absl::StatusOr<config::TrainConfig> reparsed = ParseTrainConfigText(text, "resolved");
  ASSERT_TRUE(reparsed.ok()) << reparsed.status();
  for (int world_size : {1, 4}) {
    EXPECT_TRUE(ValidateTrainConfig(*reparsed, world_size).ok()) << world_size;
  }
  // Set explicitly, it stays: the user's own statement, checked against the layout.
  absl::StatusOr<config::TrainConfig> explicit_accum = LoadTrainConfig(
      "", {"train.micro_batch_size=2", "train.global_batch_size=8", "train.grad_accum_steps=2"},
      /*world_size=*/2);
  ASSERT_TRUE(explicit_accum.ok()) << explicit_accum.status();
  EXPECT_THAT(ResolvedConfigText(*explicit_accum), HasSubstr("grad_accum_steps: 2"));
}

TEST(ConfigJsonTest, EveryFieldWithEnumNamesAndNumbers) {
  config::TrainConfig c;
  c.mutable_model()->set_ffn(config::ModelSection::moe);
  absl::StatusOr<google::protobuf::Struct> json = testing::ParseJsonObject(TrainConfigJson(c));
  ASSERT_TRUE(json.ok()) << json.status();
  const auto& model = json->fields().at("model").struct_value().fields();
  EXPECT_EQ(model.at("ffn").string_value(), "moe");
  EXPECT_EQ(model.at("vocab_size").number_value(), 8192);  // default, still written
  EXPECT_DOUBLE_EQ(json->fields().at("optimizer").struct_value().fields().at("lr").number_value(),
                   3e-4);
  EXPECT_EQ(json->fields().at("logging").struct_value().fields().at("progress").string_value(),
            "auto");
  EXPECT_EQ(json->fields().size(), 8u);  // every section
}

}  // namespace
}  // namespace aoetron
