#include "index/byte_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace lazyroot {
namespace {

class FileByteSource final : public ByteSource {
 public:
  FileByteSource(int fd, uint64_t size, std::string name) : fd_(fd), size_(size), name_(std::move(name)) {}
  ~FileByteSource() override { ::close(fd_); }
  FileByteSource(const FileByteSource&) = delete;
  FileByteSource& operator=(const FileByteSource&) = delete;

  // The source is the file as it was when opened: size_ bytes. Reads stop
  // there even if the file grew since, and a file that shrank under us (a
  // store file truncated under a live mount) is an error for the bytes it
  // lost, never a short read that a caller could take for the end of the
  // data or zeros. (Replaced by rename or deleted: the descriptor still reads
  // the old bytes. Rewritten in place: the verified reads of the layer index
  // v2 catch that.)
  Status ReadAt(uint64_t offset, std::span<uint8_t> out, size_t* n) const override {
    *n = 0;
    if (offset >= size_) return Status::Ok();
    const size_t want = static_cast<size_t>(std::min<uint64_t>(out.size(), size_ - offset));
    size_t done = 0;
    while (done < want) {
      ssize_t r = ::pread(fd_, out.data() + done, want - done, static_cast<off_t>(offset + done));
      if (r < 0) {
        int err = errno;
        if (err == EINTR) continue;
        *n = done;
        return Status::FromErrno(name_ + ": read at offset " + std::to_string(offset + done), err);
      }
      if (r == 0) {
        *n = done;
        return Status::IoError(name_ + ": the file ends at offset " + std::to_string(offset + done) + ", it had " +
                               std::to_string(size_) + " bytes when opened (truncated in the store?)");
      }
      done += static_cast<size_t>(r);
    }
    *n = done;
    return Status::Ok();
  }
  uint64_t Size() const override { return size_; }
  const std::string& Name() const override { return name_; }

 private:
  int fd_;
  uint64_t size_;
  std::string name_;
};

class MemorySource final : public ByteSource {
 public:
  MemorySource(std::span<const uint8_t> bytes, std::string name) : bytes_(bytes), name_(std::move(name)) {}
  Status ReadAt(uint64_t offset, std::span<uint8_t> out, size_t* n) const override {
    if (offset >= bytes_.size()) {
      *n = 0;
      return Status::Ok();
    }
    size_t count = std::min<uint64_t>(out.size(), bytes_.size() - offset);
    std::memcpy(out.data(), bytes_.data() + offset, count);
    *n = count;
    return Status::Ok();
  }
  uint64_t Size() const override { return bytes_.size(); }
  const std::string& Name() const override { return name_; }

 private:
  std::span<const uint8_t> bytes_;
  std::string name_;
};

}  // namespace

Result<std::unique_ptr<ByteSource>> OpenFileByteSource(const std::string& path, std::string name) {
  // O_NONBLOCK: a FIFO where a blob belongs must not hang a mount or extract
  // in open (reads of a regular file ignore the flag).
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) return Status::NotFound(name + ": " + path + " does not exist");
    return Status::FromErrno(name + ": open " + path, err);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return Status::FromErrno(name + ": stat " + path, err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::Corruption(name + ": " + path + " is not a regular file");
  }
  return std::unique_ptr<ByteSource>(new FileByteSource(fd, static_cast<uint64_t>(st.st_size), std::move(name)));
}

std::unique_ptr<ByteSource> MemoryByteSource(std::span<const uint8_t> bytes, std::string name) {
  return std::make_unique<MemorySource>(bytes, std::move(name));
}

}  // namespace lazyroot
