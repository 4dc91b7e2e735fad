#include "core/optim/lr_schedule.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <string>

#include "absl/strings/str_cat.h"

namespace aoetron {
namespace {

// max 1.0, floor 0.1, 10 warmup steps, 100 steps of decay (τ = (step − 10) / 100).
LrSchedule MakeSchedule(LrDecay decay) {
  LrSchedule s;
  s.decay = decay;
  s.max_lr = 1.0;
  s.min_lr = 0.1;
  s.warmup_steps = 10;
  s.total_steps = 110;
  s.wsd_decay_fraction = 0.2;
  return s;
}

constexpr double kTol = 1e-12;

TEST(LrScheduleTest, WarmupIsLinearFromMaxOverWarmupToMax) {
  for (LrDecay decay : {LrDecay::kConstant, LrDecay::kCosine, LrDecay::kLinear, LrDecay::kWsd}) {
    const LrSchedule s = MakeSchedule(decay);
    EXPECT_NEAR(s.At(0), 0.1, kTol);  // (0 + 1) / 10
    EXPECT_NEAR(s.At(4), 0.5, kTol);
    EXPECT_NEAR(s.At(9), 1.0, kTol);   // last warmup step reaches max_lr
    EXPECT_NEAR(s.At(10), 1.0, kTol);  // τ = 0: every shape starts its decay at max_lr
  }
}

TEST(LrScheduleTest, ConstantStaysAtMax) {
  const LrSchedule s = MakeSchedule(LrDecay::kConstant);
  EXPECT_NEAR(s.At(60), 1.0, kTol);
  EXPECT_NEAR(s.At(110), 1.0, kTol);
  EXPECT_NEAR(s.At(1000000), 1.0, kTol);
}

TEST(LrScheduleTest, CosineKeyPoints) {
  const LrSchedule s = MakeSchedule(LrDecay::kCosine);
  EXPECT_NEAR(s.At(35), 0.1 + 0.9 * 0.5 * (1 + std::cos(std::numbers::pi / 4)), kTol);
  EXPECT_NEAR(s.At(60), 0.55, kTol);  // midpoint: halfway between max and floor
  EXPECT_NEAR(s.At(85), 0.1 + 0.9 * 0.5 * (1 + std::cos(3 * std::numbers::pi / 4)), kTol);
  EXPECT_NEAR(s.At(110), 0.1, kTol);   // end
  EXPECT_NEAR(s.At(5000), 0.1, kTol);  // past the end: the floor
}

TEST(LrScheduleTest, LinearKeyPoints) {
  const LrSchedule s = MakeSchedule(LrDecay::kLinear);
  EXPECT_NEAR(s.At(35), 0.1 + 0.9 * 0.75, kTol);
  EXPECT_NEAR(s.At(60), 0.55, kTol);
  EXPECT_NEAR(s.At(109), 0.1 + 0.9 * 0.01, kTol);
  EXPECT_NEAR(s.At(110), 0.1, kTol);
  EXPECT_NEAR(s.At(5000), 0.1, kTol);
}

TEST(LrScheduleTest, WsdIsStableThenDecaysOverTheLastFraction) {
  const LrSchedule s = MakeSchedule(LrDecay::kWsd);  // decay over τ ∈ (0.8, 1]: steps 90..110
  EXPECT_NEAR(s.At(60), 1.0, kTol);
  EXPECT_NEAR(s.At(89), 1.0, kTol);
  EXPECT_NEAR(s.At(90), 1.0, kTol);               // boundary τ = 0.8: still max_lr
  EXPECT_NEAR(s.At(91), 0.1 + 0.9 * 0.95, kTol);  // first decay step
  EXPECT_NEAR(s.At(100), 0.55, kTol);             // middle of the decay
  EXPECT_NEAR(s.At(110), 0.1, kTol);              // end
  EXPECT_NEAR(s.At(2000), 0.1, kTol);

  LrSchedule no_decay = s;
  no_decay.wsd_decay_fraction = 0.0;
  EXPECT_NEAR(no_decay.At(110), 1.0, kTol);
  LrSchedule all_decay = s;
  all_decay.wsd_decay_fraction = 1.0;  // the same as linear
  EXPECT_NEAR(all_decay.At(35), 0.1 + 0.9 * 0.75, kTol);
}

TEST(LrScheduleTest, NeverBelowTheFloorAfterWarmup) {
  for (LrDecay decay : {LrDecay::kConstant, LrDecay::kCosine, LrDecay::kLinear, LrDecay::kWsd}) {
    const LrSchedule s = MakeSchedule(decay);
    double previous = s.At(10);
    for (int64_t step = 10; step < 300; ++step) {
      const double lr = s.At(step);
      EXPECT_GE(lr, 0.1 - kTol) << "step " << step;
      EXPECT_LE(lr, previous + kTol) << "step " << step << ": decay must not increase";
      previous = lr;
    }
  }
}

TEST(LrScheduleTest, NoWarmupAndNoDecayStepsAreHandled) {
  LrSchedule s = MakeSchedule(LrDecay::kCosine);
  s.warmup_steps = 0;
  EXPECT_NEAR(s.At(0), 1.0, kTol);
  EXPECT_NEAR(s.At(55), 0.55, kTol);  // τ = 55/110
  s.warmup_steps = 200;               // more warmup than total steps: floor right after warmup
  EXPECT_NEAR(s.At(199), 1.0, kTol);
  EXPECT_NEAR(s.At(200), 0.1, kTol);
}

TEST(LrScheduleTest, ParsesEveryDecayName) {
  EXPECT_EQ(*ParseLrDecay("constant"), LrDecay::kConstant);
  EXPECT_EQ(*ParseLrDecay("cosine"), LrDecay::kCosine);
  EXPECT_EQ(*ParseLrDecay("linear"), LrDecay::kLinear);
  EXPECT_EQ(*ParseLrDecay("wsd"), LrDecay::kWsd);
}

TEST(LrScheduleTest, UnknownNameIsInvalidArgumentNamingValueAndChoices) {
  for (const char* bad : {"cosin", "", "Cosine", "wsd "}) {
    const absl::StatusOr<LrDecay> parsed = ParseLrDecay(bad);
    ASSERT_FALSE(parsed.ok()) << "\"" << bad << "\"";
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    const std::string message(parsed.status().message());
    const std::string quoted = absl::StrCat("\"", bad, "\"");
    EXPECT_NE(message.find(quoted), std::string::npos) << message;
    EXPECT_NE(message.find("constant, cosine, linear, wsd"), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace aoetron
