// Pure pieces of the checkpoint library: CRC-32C, box arithmetic, replica-writer assignment,
// directory names, the commit marker.
#include "launcher/checkpoint/sharded_tensor.h"

#include <gtest/gtest.h>

#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "launcher/checkpoint/checkpoint_format.h"
#include "launcher/checkpoint/crc32c.h"

namespace aoetron::checkpoint {
namespace {

TEST(Crc32c, KnownVectors) {
  // The CRC-32C check value (RFC 3720 / iSCSI): "123456789" → 0xE3069283.
  const std::string check = "123456789";
  EXPECT_EQ(Crc32c(check.data(), check.size()), 0xE3069283u);
  EXPECT_EQ(Crc32c(nullptr, 0), 0u);
  // RFC 3720 B.4: 32 bytes of zeros → 0x8A9136AA; 32 bytes of 0xFF → 0x62A8AB43.
  std::vector<uint8_t> zeros(32, 0), ones(32, 0xFF), ascending(32);
  std::iota(ascending.begin(), ascending.end(), 0);
  EXPECT_EQ(Crc32c(zeros.data(), 32), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(ones.data(), 32), 0x62A8AB43u);
  EXPECT_EQ(Crc32c(ascending.data(), 32), 0x46DD794Eu);
}

TEST(Crc32c, ExtendEqualsWholeAtEverySplitAndAlignment) {
  std::mt19937 gen(7);
  std::vector<uint8_t> data(1000);
  for (uint8_t& b : data) b = static_cast<uint8_t>(gen());
  for (size_t start : {0, 1, 3, 7}) {
    const uint32_t whole = Crc32c(data.data() + start, 900);
    for (size_t split : {0, 1, 5, 8, 31, 33, 450, 899, 900}) {
      EXPECT_EQ(Crc32cExtend(Crc32c(data.data() + start, split), data.data() + start + split,
                             900 - split),
                whole)
          << start << " " << split;
    }
  }
  // A flipped bit changes it.
  const uint32_t before = Crc32c(data.data(), data.size());
  data[500] ^= 4;
  EXPECT_NE(Crc32c(data.data(), data.size()), before);
}

TEST(Region, IntersectAndToString) {
  const Region a{{0, 2}, {4, 4}}, b{{2, 0}, {4, 3}};
  EXPECT_EQ(RegionToString(a), "[0:4, 2:6]");
  std::optional<Region> c = Intersect(a, b);
  ASSERT_TRUE(c);
  EXPECT_EQ(*c, (Region{{2, 2}, {2, 1}}));
  EXPECT_FALSE(Intersect(a, Region{{4, 0}, {1, 8}}));      // touching, not overlapping
  EXPECT_FALSE(Intersect(a, Region{{0, 2}, {0, 4}}));      // empty
  EXPECT_TRUE(Intersect(Region{{}, {}}, Region{{}, {}}));  // scalars
  EXPECT_EQ(RegionToString(Region{{}, {}}), "[]");
}

TEST(Region, Validate) {
  EXPECT_TRUE(ValidateRegion(Region{{4, 0}, {4, 6}}, {8, 6}, "x").ok());
  const absl::Status outside = ValidateRegion(Region{{5, 0}, {4, 6}}, {8, 6}, "tensor 'w'");
  EXPECT_FALSE(outside.ok());
  EXPECT_NE(outside.message().find("tensor 'w'"), std::string::npos) << outside;
  EXPECT_NE(outside.message().find("[5:9, 0:6]"), std::string::npos) << outside;
  EXPECT_FALSE(ValidateRegion(Region{{0}, {8}}, {8, 6}, "x").ok());
}

// Global element value at a flat global index: distinct for every element.
float Value(int64_t flat) { return static_cast<float>(flat) + 0.25f; }

std::vector<float> FillBox(const Shape& global, const Region& box) {
  std::vector<float> out(RegionElements(box));
  std::vector<int64_t> index(box.shape.size(), 0);
  for (int64_t i = 0; i < RegionElements(box); ++i) {
    int64_t flat = 0;
    for (size_t d = 0; d < global.size(); ++d) flat = flat * global[d] + box.offset[d] + index[d];
    out[i] = Value(flat);
    for (int d = static_cast<int>(index.size()) - 1; d >= 0; --d) {
      if (++index[d] < box.shape[d]) break;
      index[d] = 0;
    }
  }
  return out;
}

Region RandomRegion(std::mt19937& gen, const Shape& global) {
  Region r;
  for (int64_t n : global) {
    const int64_t a = std::uniform_int_distribution<int64_t>(0, n - 1)(gen);
    const int64_t b = std::uniform_int_distribution<int64_t>(a + 1, n)(gen);
    r.offset.push_back(a);
    r.shape.push_back(b - a);
  }
  return r;
}

TEST(Region, CopyRegionAgreesWithElementwiseCopy) {
  std::mt19937 gen(11);
  for (int trial = 0; trial < 300; ++trial) {
    const int rank = 1 + trial % 4;
    Shape global;
    for (int d = 0; d < rank; ++d)
      global.push_back(std::uniform_int_distribution<int64_t>(1, 6)(gen));
    const Region src = RandomRegion(gen, global), dst = RandomRegion(gen, global);
    std::optional<Region> common = Intersect(src, dst);
    if (!common) continue;
    const std::vector<float> source = FillBox(global, src);
    std::vector<float> destination(RegionElements(dst), -1.0f);
    CopyRegion(source.data(), src, destination.data(), dst, *common, sizeof(float));
    // Expected: elements of dst inside common hold their global value, the rest stay −1.
    const std::vector<float> truth = FillBox(global, dst);
    std::vector<int64_t> index(rank, 0);
    for (int64_t i = 0; i < RegionElements(dst); ++i) {
      bool inside = true;
      for (int d = 0; d < rank; ++d) {
        const int64_t g = dst.offset[d] + index[d];
        inside = inside && g >= common->offset[d] && g < common->offset[d] + common->shape[d];
      }
      ASSERT_EQ(destination[i], inside ? truth[i] : -1.0f) << "trial " << trial << " i " << i;
      for (int d = rank - 1; d >= 0; --d) {
        if (++index[d] < dst.shape[d]) break;
        index[d] = 0;
      }
    }
  }
}

TEST(Region, FlatRangeToRegionsCoversTheRangeInOrder) {
  std::mt19937 gen(5);
  for (int trial = 0; trial < 400; ++trial) {
    const int rank = 1 + trial % 4;
    Shape global;
    for (int d = 0; d < rank; ++d)
      global.push_back(std::uniform_int_distribution<int64_t>(1, 5)(gen));
    const Region box = RandomRegion(gen, global);
    const int64_t n = RegionElements(box);
    const int64_t begin = std::uniform_int_distribution<int64_t>(0, n)(gen);
    const int64_t end = std::uniform_int_distribution<int64_t>(begin, n)(gen);
    const std::vector<Region> regions = FlatRangeToRegions(box, begin, end);
    EXPECT_LE(static_cast<int>(regions.size()), std::max(1, 2 * rank - 1));
    // Concatenating the regions' elements (row-major each) gives the box's flat range.
    const std::vector<float> whole = FillBox(global, box);
    std::vector<float> joined;
    for (const Region& r : regions) {
      ASSERT_TRUE(Intersect(r, box)) << RegionToString(r);
      EXPECT_EQ(*Intersect(r, box), r) << "not inside the box";
      const std::vector<float> part = FillBox(global, r);
      joined.insert(joined.end(), part.begin(), part.end());
    }
    ASSERT_EQ(joined, std::vector<float>(whole.begin() + begin, whole.begin() + end))
        << "trial " << trial << " box " << RegionToString(box) << " [" << begin << ", " << end
        << ")";
  }
  // A scalar.
  EXPECT_EQ(FlatRangeToRegions(Region{{}, {}}, 0, 1).size(), 1u);
}

TEST(AssignReplicaWriters, BalancesBytesAndIsDeterministic) {
  const std::vector<int64_t> bytes = {100, 10, 90, 50, 50, 40, 30, 20, 10, 5};
  const std::vector<int> writers = AssignReplicaWriters(bytes, 3);
  EXPECT_EQ(writers, AssignReplicaWriters(bytes, 3));
  std::vector<int64_t> load(3, 0);
  for (size_t i = 0; i < bytes.size(); ++i) {
    ASSERT_GE(writers[i], 0);
    ASSERT_LT(writers[i], 3);
    load[writers[i]] += bytes[i];
  }
  const int64_t total = std::accumulate(bytes.begin(), bytes.end(), int64_t{0});
  for (int64_t l : load) EXPECT_LE(l, total / 3 + 100) << "LPT bound: ≤ mean + largest box";
  EXPECT_GT(*std::min_element(load.begin(), load.end()), 0);
  // One replica writes everything.
  for (int w : AssignReplicaWriters(bytes, 1)) EXPECT_EQ(w, 0);
}

TEST(Format, StepDirectoryNames) {
  EXPECT_EQ(StepDirectoryName(1200), "step_1200");
  EXPECT_EQ(ParseStepDirectoryName("step_1200"), 1200);
  EXPECT_EQ(ParseStepDirectoryName("step_0"), 0);
  EXPECT_FALSE(ParseStepDirectoryName("step_12.tmp"));
  EXPECT_FALSE(ParseStepDirectoryName("step_"));
  EXPECT_FALSE(ParseStepDirectoryName("step_-1"));
  EXPECT_FALSE(ParseStepDirectoryName("latest"));
  EXPECT_EQ(ShardFileName(3), "rank_00003.bin");
}

TEST(Format, CommitMarkerRoundTripAndDamage) {
  const std::string text = CommitMarkerText(42, 1234, 0xdeadbeef);
  absl::StatusOr<CommitMarker> marker = ParseCommitMarker(text, "/x/COMMITTED");
  ASSERT_TRUE(marker.ok()) << marker.status();
  EXPECT_EQ(marker->step, 42);
  EXPECT_EQ(marker->manifest_bytes, 1234u);
  EXPECT_EQ(marker->manifest_crc32c, 0xdeadbeefu);
  for (const std::string& bad :
       {std::string(""), text.substr(0, text.size() / 2), std::string("garbage\n")}) {
    absl::StatusOr<CommitMarker> m = ParseCommitMarker(bad, "/x/COMMITTED");
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.status().message().find("/x/COMMITTED"), std::string::npos);
  }
}

}  // namespace
}  // namespace aoetron::checkpoint
