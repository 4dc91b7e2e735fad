#include "launcher/checkpoint/checkpoint_writer.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>

#include "absl/strings/str_cat.h"
#include "launcher/checkpoint/checkpoint_format.h"
#include "launcher/checkpoint/crc32c.h"
#include "launcher/checkpoint/durable_file.h"

namespace aoetron::checkpoint {
namespace {

uint64_t AlignUp(uint64_t n, uint64_t alignment) {
  return (n + alignment - 1) / alignment * alignment;
}

// Snapshot sizes round up to whole pages.
constexpr uint64_t kBufferAlignment = 4096;
// The writer hands the kernel this much per write() call and checksums it just before.
constexpr uint64_t kWriteWindowBytes = uint64_t{64} << 20;

}  // namespace

absl::Status ValidateSaveItems(const std::vector<SaveItem>& items, int rank) {
  std::map<std::string, std::vector<const SaveItem*>> written;
  for (const SaveItem& item : items) {
    const std::string what = absl::StrCat("rank ", rank, ": save item '", item.box.name, "'");
    if (item.box.name.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("rank ", rank, ": a save item has no name"));
    }
    if (absl::Status s = ValidateRegion(item.box.region, item.box.global_shape, what); !s.ok()) {
      return s;
    }
    if (!item.values.defined()) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": values are undefined"));
    }
    if (!item.values.device().is_cpu()) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": values are on ",
                                                     item.values.DebugString(),
                                                     "; copy them to the host before saving"));
    }
    if (item.values.dtype() != item.box.dtype ||
        item.values.numel() != RegionElements(item.box.region)) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": values are ", item.values.DebugString(), " but the box ",
          RegionToString(item.box.region), " of ", ShapeToString(item.box.global_shape), " needs ",
          RegionElements(item.box.region), " elements of ", DTypeString(item.box.dtype)));
    }
    if (item.write) written[item.box.name].push_back(&item);
  }
  for (const auto& [name, boxes] : written) {
    for (size_t i = 0; i < boxes.size(); ++i) {
      for (size_t j = i + 1; j < boxes.size(); ++j) {
        if (boxes[i]->box.global_shape != boxes[j]->box.global_shape ||
            boxes[i]->box.dtype != boxes[j]->box.dtype) {
          return absl::InvalidArgumentError(absl::StrCat(
              "rank ", rank, ": tensor '", name,
              "' is given twice with different global shape or dtype: ",
              ShapeToString(boxes[i]->box.global_shape), " ", DTypeString(boxes[i]->box.dtype),
              " and ", ShapeToString(boxes[j]->box.global_shape), " ",
              DTypeString(boxes[j]->box.dtype)));
        }
        if (Intersect(boxes[i]->box.region, boxes[j]->box.region)) {
          return absl::InvalidArgumentError(
              absl::StrCat("rank ", rank, ": tensor '", name, "' is written twice: regions ",
                           RegionToString(boxes[i]->box.region), " and ",
                           RegionToString(boxes[j]->box.region), " overlap"));
        }
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ShardSnapshot::Snapshot(const std::vector<SaveItem>& items, int rank, int threads) {
  if (absl::Status s = ValidateSaveItems(items, rank); !s.ok()) return s;
  rank_ = rank;
  // 1. Lay the records out.
  records_.clear();
  held_not_written_.clear();
  uint64_t end = 0;
  std::vector<const SaveItem*> sources;
  for (const SaveItem& item : items) {
    if (!item.write) {
      held_not_written_.push_back(Record{item.box, item.kind, 0, 0});
      continue;
    }
    const uint64_t offset = AlignUp(end, kRecordAlignment);
    const uint64_t length = item.values.nbytes();
    records_.push_back(Record{item.box, item.kind, offset, length});
    sources.push_back(&item);
    end = offset + length;
  }
  file_bytes_ = end;
  // 2. Grow the buffer only when needed (its pages are then faulted in once, by the copy).
  if (file_bytes_ > capacity_) {
    const uint64_t capacity = AlignUp(std::max<uint64_t>(file_bytes_, 1), kBufferAlignment);
    buffer_.reset();
    buffer_ = AllocateHostBuffer(capacity);
    if (buffer_ == nullptr) {
      capacity_ = 0;
      return absl::ResourceExhaustedError(absl::StrCat(
          "rank ", rank, ": cannot allocate ", capacity, " bytes for the checkpoint snapshot"));
    }
    capacity_ = capacity;
  }
  // 3. Copy, in pieces of ≤ 8 MiB spread over the threads (one memcpy stream cannot fill the
  //    memory bandwidth), and zero the alignment padding so files are byte-deterministic.
  struct Piece {
    const uint8_t* from;
    uint8_t* to;
    uint64_t bytes;
  };
  constexpr uint64_t kPieceBytes = uint64_t{8} << 20;
  std::vector<Piece> pieces;
  uint64_t previous_end = 0;
  for (size_t r = 0; r < records_.size(); ++r) {
    std::memset(buffer_.get() + previous_end, 0, records_[r].byte_offset - previous_end);
    const auto* from = static_cast<const uint8_t*>(sources[r]->values.raw_data());
    for (uint64_t done = 0; done < records_[r].byte_length; done += kPieceBytes) {
      pieces.push_back(Piece{from + done, buffer_.get() + records_[r].byte_offset + done,
                             std::min(kPieceBytes, records_[r].byte_length - done)});
    }
    previous_end = records_[r].byte_offset + records_[r].byte_length;
  }
  const int team = threads > 0 ? threads : omp_get_max_threads();
#pragma omp parallel for schedule(dynamic, 1) num_threads(team)
  for (int64_t i = 0; i < static_cast<int64_t>(pieces.size()); ++i) {
    std::memcpy(pieces[i].to, pieces[i].from, pieces[i].bytes);
  }
  return absl::OkStatus();
}

absl::StatusOr<pb::ShardReport> ShardSnapshot::WriteShard(const std::string& directory,
                                                          const std::string& file_name,
                                                          uint64_t chunk_bytes) const {
  pb::ShardReport report;
  report.set_rank(rank_);
  for (const Record& held : held_not_written_) {
    pb::TensorRecord* t = report.add_held_not_written();
    t->set_name(held.box.name);
    t->set_dtype(DTypeString(held.box.dtype));
    t->set_kind(held.kind);
    for (int64_t d : held.box.global_shape) t->add_global_shape(d);
    for (int64_t d : held.box.region.offset) t->add_offset(d);
    for (int64_t d : held.box.region.shape) t->add_shape(d);
    t->set_writer_rank(rank_);
  }
  if (records_.empty()) {
    report.set_ok(true);
    return report;
  }
  const std::string path = JoinPath(directory, file_name);
  absl::StatusOr<FileDescriptor> file = FileDescriptor::Create(path);
  if (!file.ok()) return file.status();

  // CRC of each record's pieces, computed window by window right before the window is written
  // (the bytes are then in cache); records and pieces are visited in file order.
  std::vector<pb::TensorRecord> out(records_.size());
  for (size_t r = 0; r < records_.size(); ++r) {
    const Record& record = records_[r];
    pb::TensorRecord& t = out[r];
    t.set_name(record.box.name);
    t.set_dtype(DTypeString(record.box.dtype));
    t.set_kind(record.kind);
    for (int64_t d : record.box.global_shape) t.add_global_shape(d);
    for (int64_t d : record.box.region.offset) t.add_offset(d);
    for (int64_t d : record.box.region.shape) t.add_shape(d);
    t.set_file(file_name);
    t.set_byte_offset(record.byte_offset);
    t.set_byte_length(record.byte_length);
    t.set_writer_rank(rank_);
  }
  size_t record = 0;
  uint64_t piece_begin = 0;  // next unchecksummed byte of records_[record], relative to it
  for (uint64_t window = 0; window < file_bytes_; window += kWriteWindowBytes) {
    const uint64_t window_end = std::min(file_bytes_, window + kWriteWindowBytes);
    // Checksum every piece that ends inside this window.
    while (record < records_.size()) {
      const Record& r = records_[record];
      if (r.byte_length == 0) {
        ++record;
        continue;
      }
      const uint64_t piece_end = std::min(r.byte_length, piece_begin + chunk_bytes);
      if (r.byte_offset + piece_end > window_end) break;
      out[record].add_chunk_crc32c(
          Crc32c(buffer_.get() + r.byte_offset + piece_begin, piece_end - piece_begin));
      piece_begin = piece_end;
      if (piece_begin == r.byte_length) {
        ++record;
        piece_begin = 0;
      }
    }
    if (absl::Status s = file->WriteAll(buffer_.get() + window, window_end - window); !s.ok()) {
      return s;
    }
  }
  if (record != records_.size()) {
    return absl::InternalError(absl::StrCat(path, ": checksumming stopped at record '",
                                            records_[record].box.name, "' (a bug)"));
  }
  if (absl::Status s = file->Sync(); !s.ok()) return s;
  if (absl::Status s = file->Close(); !s.ok()) return s;

  pb::FileRecord* f = report.add_files();
  f->set_name(file_name);
  f->set_size(file_bytes_);
  f->set_writer_rank(rank_);
  for (pb::TensorRecord& t : out) *report.add_tensors() = std::move(t);
  report.set_ok(true);
  return report;
}

}  // namespace aoetron::checkpoint
