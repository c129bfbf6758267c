#include "index/layer_decoder.h"

#include <algorithm>
#include <utility>

#include "index/gzip_index.h"
#include "index/zstd_index.h"

namespace lazyroot {
namespace {

// An uncompressed tar: output is the input; the table has no points.
class PlainStreamDecoder final : public StreamDecoder {
 public:
  Status Feed(std::span<const uint8_t> in, const OutputFn& on_output) override {
    if (in.empty()) return Status::Ok();
    total_ += in.size();
    return on_output(in);
  }
  Status Finish(const OutputFn&) override { return Status::Ok(); }
  uint64_t total_in() const override { return total_; }
  uint64_t total_out() const override { return total_; }
  CheckpointTable TakeCheckpoints() override {
    CheckpointTable t;
    t.compression = Compression::kNone;
    t.compressed_size = total_;
    t.uncompressed_size = total_;
    return t;
  }

 private:
  uint64_t total_ = 0;
};

// Reads of an uncompressed blob are reads of the blob.
class PlainRandomReader final : public RandomReader {
 public:
  PlainRandomReader(std::shared_ptr<const CheckpointTable> table, const ByteSource* blob, std::string name)
      : table_(std::move(table)), blob_(blob), name_(std::move(name)) {}
  Status Read(uint64_t offset, std::span<uint8_t> out, size_t* n) override {
    *n = 0;
    if (offset >= table_->uncompressed_size) return Status::Ok();
    size_t want = static_cast<size_t>(std::min<uint64_t>(out.size(), table_->uncompressed_size - offset));
    LAZYROOT_RETURN_IF_ERROR(blob_->ReadAt(offset, out.first(want), n));
    if (*n != want) {
      return Status::Corruption(name_ + ": tar blob ends at offset " + std::to_string(offset + *n) + ", expected " +
                                std::to_string(table_->uncompressed_size) + " bytes");
    }
    return Status::Ok();
  }
  uint64_t reprimes() const override { return 0; }

 private:
  std::shared_ptr<const CheckpointTable> table_;
  const ByteSource* blob_;
  std::string name_;
};

// Random access over any PointDecoder: re-prime from the nearest checkpoint only
// when going backwards or when a checkpoint lies between the warm position and
// the offset (restarting there is then never more work than decoding on).
class CheckpointRandomReader final : public RandomReader {
 public:
  CheckpointRandomReader(std::shared_ptr<const CheckpointTable> table, std::unique_ptr<PointDecoder> decoder)
      : table_(std::move(table)), decoder_(std::move(decoder)) {}

  Status Read(uint64_t offset, std::span<uint8_t> out, size_t* n) override {
    *n = 0;
    if (offset >= table_->uncompressed_size || out.empty()) return Status::Ok();
    size_t want = static_cast<size_t>(std::min<uint64_t>(out.size(), table_->uncompressed_size - offset));
    const Checkpoint& p = table_->points[PrimePoint(*table_, offset, decoder_->PrimesMidBlock())];
    if (!warm_ || offset < pos_ || p.out_offset > pos_) {
      warm_ = false;
      ++reprimes_;
      LAZYROOT_RETURN_IF_ERROR(decoder_->Prime(p));
      decoder_->ExpectOutput(offset + want - p.out_offset);
      pos_ = p.out_offset;
      warm_ = true;
    }
    Status st = decoder_->Skip(offset - pos_);
    if (st.ok()) st = decoder_->Decode(out.first(want));
    if (!st.ok()) {
      warm_ = false;
      return st;
    }
    pos_ = offset + want;
    *n = want;
    return Status::Ok();
  }
  uint64_t reprimes() const override { return reprimes_; }
  uint64_t position() const override { return warm_ ? pos_ : kNoPosition; }
  uint64_t memory_bytes() const override { return sizeof *this + decoder_->memory_bytes(); }
  uint64_t max_memory_bytes() const override { return sizeof *this + decoder_->max_memory_bytes(); }
  uint64_t LimitWindow(uint64_t window_bytes) override { return sizeof *this + decoder_->LimitWindow(window_bytes); }

 private:
  std::shared_ptr<const CheckpointTable> table_;
  std::unique_ptr<PointDecoder> decoder_;
  bool warm_ = false;
  uint64_t pos_ = 0;  // uncompressed offset the decoder produces next (when warm_)
  uint64_t reprimes_ = 0;
};

}  // namespace

std::unique_ptr<StreamDecoder> StreamDecoder::Create(Compression c, std::string name, uint64_t span_bytes,
                                                     InflateEngine gzip_engine, FineRanges* fine) {
  span_bytes = std::max<uint64_t>(span_bytes, 1);
  switch (c) {
    case Compression::kNone: return std::make_unique<PlainStreamDecoder>();
    case Compression::kGzip: return NewGzipStreamDecoder(std::move(name), span_bytes, gzip_engine, fine);
    case Compression::kZstd: return NewZstdStreamDecoder(std::move(name), span_bytes);
  }
  return nullptr;
}

std::unique_ptr<RandomReader> RandomReader::Create(std::shared_ptr<const CheckpointTable> table,
                                                   const ByteSource* blob, std::string name) {
  switch (table->compression) {
    case Compression::kNone: return std::make_unique<PlainRandomReader>(std::move(table), blob, std::move(name));
    case Compression::kGzip: {
      auto d = NewGzipPointDecoder(table.get(), blob, std::move(name));
      return std::make_unique<CheckpointRandomReader>(std::move(table), std::move(d));
    }
    case Compression::kZstd: {
      auto d = NewZstdPointDecoder(table.get(), blob, std::move(name));
      return std::make_unique<CheckpointRandomReader>(std::move(table), std::move(d));
    }
  }
  return nullptr;
}

std::unique_ptr<RandomReader> RandomReader::Create(std::shared_ptr<const CheckpointTable> table,
                                                   std::unique_ptr<PointDecoder> decoder) {
  return std::make_unique<CheckpointRandomReader>(std::move(table), std::move(decoder));
}

}  // namespace lazyroot
