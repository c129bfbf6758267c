#include "src/json_document.h"

#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/encodedstream.h>
#include <rapidjson/reader.h>

#include <string>

namespace lazyroot {
namespace {

// A document is released in one go by its pool allocator; were values freed
// one by one, destroying a deep DOM would recurse.
static_assert(!rapidjson::Document::AllocatorType::kNeedFree, "JSON DOM destruction must not recurse");

// Forwards SAX events to the document and stops the parser (returning false)
// when a container opens deeper than max_depth.
class DepthLimiter {
 public:
  using Ch = rapidjson::Document::Ch;
  DepthLimiter(rapidjson::Document& doc, int max_depth) : doc_(doc), max_depth_(max_depth) {}

  bool too_deep() const { return too_deep_; }

  bool Null() { return doc_.Null(); }
  bool Bool(bool b) { return doc_.Bool(b); }
  bool Int(int i) { return doc_.Int(i); }
  bool Uint(unsigned u) { return doc_.Uint(u); }
  bool Int64(int64_t i) { return doc_.Int64(i); }
  bool Uint64(uint64_t u) { return doc_.Uint64(u); }
  bool Double(double d) { return doc_.Double(d); }
  bool RawNumber(const Ch* s, rapidjson::SizeType n, bool copy) { return doc_.RawNumber(s, n, copy); }
  bool String(const Ch* s, rapidjson::SizeType n, bool copy) { return doc_.String(s, n, copy); }
  bool Key(const Ch* s, rapidjson::SizeType n, bool copy) { return doc_.Key(s, n, copy); }
  bool StartObject() { return Open() && doc_.StartObject(); }
  bool EndObject(rapidjson::SizeType members) {
    --depth_;
    return doc_.EndObject(members);
  }
  bool StartArray() { return Open() && doc_.StartArray(); }
  bool EndArray(rapidjson::SizeType elements) {
    --depth_;
    return doc_.EndArray(elements);
  }

 private:
  bool Open() {
    if (++depth_ > max_depth_) {
      too_deep_ = true;
      return false;
    }
    return true;
  }

  rapidjson::Document& doc_;
  const int max_depth_;
  int depth_ = 0;
  bool too_deep_ = false;
};

}  // namespace

Result<rapidjson::Document> ParseJsonDocument(std::string_view text, std::string_view what, uint64_t max_bytes,
                                              ErrorCode code) {
  const std::string name(what);
  if (text.size() > max_bytes) {
    return Status::Error(code, name + ": larger than " + std::to_string(max_bytes) + " bytes");
  }
  rapidjson::Document doc;
  rapidjson::ParseResult result;
  bool too_deep = false;
  // Populate hands the document's own SAX handler to the generator and, on
  // failure, drops the half-built values (no destructor runs per value).
  auto generate = [&](rapidjson::Document& handler) {
    DepthLimiter limiter(handler, kMaxJsonDepth);
    rapidjson::MemoryStream ms(text.data(), text.size());
    rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> is(ms);
    rapidjson::Reader reader;
    result = reader.Parse<rapidjson::kParseIterativeFlag>(is, limiter);
    too_deep = limiter.too_deep();
    return !result.IsError();
  };
  doc.Populate(generate);
  if (too_deep) {
    return Status::Error(code, name + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) +
                                   " levels at offset " + std::to_string(result.Offset()));
  }
  if (result.IsError()) {
    return Status::Error(code, name + " is not valid JSON: " + rapidjson::GetParseError_En(result.Code()) +
                                   " at offset " + std::to_string(result.Offset()));
  }
  if (!doc.IsObject()) return Status::Error(code, name + " is not a JSON object");
  return doc;
}

}  // namespace lazyroot
