#include "src/image/json_document.h"

#include <rapidjson/encodedstream.h>
#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <cstdlib>
#include <new>
#include <string>

namespace lazyroot {

void* JsonHeapAllocator::Malloc(size_t size) {
  if (size == 0) return nullptr;  // as CrtAllocator
  void* p = std::malloc(size);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void* JsonHeapAllocator::Realloc(void* ptr, size_t, size_t new_size) {
  if (new_size == 0) {
    std::free(ptr);
    return nullptr;
  }
  void* p = std::realloc(ptr, new_size);
  if (p == nullptr) throw std::bad_alloc();  // ptr is still valid and still owned by the caller
  return p;
}

void JsonHeapAllocator::Free(void* ptr) { std::free(ptr); }

namespace {

// A document is released in one go by its pool allocator; were values freed
// one by one, destroying a deep DOM would recurse.
static_assert(!JsonDocument::AllocatorType::kNeedFree, "JSON DOM destruction must not recurse");

// Forwards SAX events to the document and stops the parser (returning false)
// when a container opens deeper than kMaxJsonDepth or a value is one too many.
class BudgetedHandler {
 public:
  using Ch = JsonDocument::Ch;
  enum class Stop { kNone, kTooDeep, kTooMany };
  explicit BudgetedHandler(JsonDocument& doc) : doc_(doc) {}

  Stop stop() const { return stop_; }

  bool Null() { return Count() && doc_.Null(); }
  bool Bool(bool b) { return Count() && doc_.Bool(b); }
  bool Int(int i) { return Count() && doc_.Int(i); }
  bool Uint(unsigned u) { return Count() && doc_.Uint(u); }
  bool Int64(int64_t i) { return Count() && doc_.Int64(i); }
  bool Uint64(uint64_t u) { return Count() && doc_.Uint64(u); }
  bool Double(double d) { return Count() && doc_.Double(d); }
  bool RawNumber(const Ch* s, rapidjson::SizeType n, bool copy) { return Count() && doc_.RawNumber(s, n, copy); }
  bool String(const Ch* s, rapidjson::SizeType n, bool copy) { return Count() && doc_.String(s, n, copy); }
  bool Key(const Ch* s, rapidjson::SizeType n, bool copy) { return doc_.Key(s, n, copy); }
  bool StartObject() { return Count() && Open() && doc_.StartObject(); }
  bool EndObject(rapidjson::SizeType members) {
    --depth_;
    return doc_.EndObject(members);
  }
  bool StartArray() { return Count() && Open() && doc_.StartArray(); }
  bool EndArray(rapidjson::SizeType elements) {
    --depth_;
    return doc_.EndArray(elements);
  }

 private:
  bool Count() {
    if (++values_ > kMaxJsonValues) {
      stop_ = Stop::kTooMany;
      return false;
    }
    return true;
  }
  bool Open() {
    if (++depth_ > kMaxJsonDepth) {
      stop_ = Stop::kTooDeep;
      return false;
    }
    return true;
  }

  JsonDocument& doc_;
  int depth_ = 0;
  uint64_t values_ = 0;
  Stop stop_ = Stop::kNone;
};

}  // namespace

Result<JsonDocument> ParseJsonDocument(std::string_view text, std::string_view what, uint64_t max_bytes,
                                       ErrorCode code) {
  LAZYROOT_ASSIGN_OR_RETURN(JsonDocument doc, ParseJsonValue(text, what, max_bytes, code));
  if (!doc.IsObject()) return Status::Error(code, std::string(what) + " is not a JSON object");
  return doc;
}

Result<JsonDocument> ParseJsonValue(std::string_view text, std::string_view what, uint64_t max_bytes,
                                    ErrorCode code) {
  const std::string name(what);
  if (text.size() > max_bytes) {
    return Status::Error(code, name + ": larger than " + std::to_string(max_bytes) + " bytes");
  }
  JsonDocument doc;
  rapidjson::ParseResult result;
  BudgetedHandler::Stop stop = BudgetedHandler::Stop::kNone;
  // Populate hands the document's own SAX handler to the generator and, on
  // failure, drops the half-built values (no destructor runs per value).
  auto generate = [&](JsonDocument& handler) {
    BudgetedHandler budgeted(handler);
    rapidjson::MemoryStream ms(text.data(), text.size());
    rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> is(ms);
    rapidjson::GenericReader<rapidjson::UTF8<>, rapidjson::UTF8<>, JsonHeapAllocator> reader;
    result = reader.Parse<rapidjson::kParseIterativeFlag>(is, budgeted);
    stop = budgeted.stop();
    return !result.IsError();
  };
  doc.Populate(generate);
  const std::string at = " at offset " + std::to_string(result.Offset());
  if (stop == BudgetedHandler::Stop::kTooDeep) {
    return Status::Error(code, name + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels" + at);
  }
  if (stop == BudgetedHandler::Stop::kTooMany) {
    return Status::Error(code, name + ": more than " + std::to_string(kMaxJsonValues) + " JSON values" + at);
  }
  if (result.IsError()) {
    return Status::Error(code, name + " is not valid JSON: " + rapidjson::GetParseError_En(result.Code()) + at);
  }
  return doc;
}

}  // namespace lazyroot
