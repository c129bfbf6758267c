// ExceptionStatus: the exception being handled, as a Status. For the places
// an exception must not cross — thread bodies (std::terminate) and main — so
// that out-of-memory on a hostile input ends as an error naming the operation
// instead of an abort without a message. Header-only; thread-safe.
#pragma once

#include <exception>
#include <new>
#include <string>

#include "index/status.h"

namespace lazyroot {

// REQUIRES: called inside a catch block. Returns kIoError (as ENOMEM from a
// system call would be): "<what>: out of memory" for std::bad_alloc,
// "<what>: internal error: <what()>" for other exceptions (no "<what>: " when
// what is empty). Never kAborted, so
// it is not mistaken for a sibling that was cancelled.
inline Status CurrentExceptionStatus(const std::string& what) {
  const std::string prefix = what.empty() ? what : what + ": ";
  try {
    throw;
  } catch (const std::bad_alloc&) {
    return Status::IoError(prefix + "out of memory");
  } catch (const std::exception& e) {
    return Status::IoError(prefix + "internal error: " + e.what());
  } catch (...) {
    return Status::IoError(prefix + "internal error: unknown exception");
  }
}

}  // namespace lazyroot
