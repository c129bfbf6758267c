#include "index/status.h"

#include <cstring>

namespace lazyroot {

Status Status::FromErrno(std::string m, int err) {
  m += ": ";
  m += std::strerror(err);
  return Status(ErrorCode::kIoError, std::move(m));
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  std::string m(context);
  m += ": ";
  m += message_;
  return Status(code_, std::move(m));
}

std::string Status::ToString() const { return ok() ? std::string("OK") : message_; }

}  // namespace lazyroot
