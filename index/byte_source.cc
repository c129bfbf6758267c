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

  Status ReadAt(uint64_t offset, std::span<uint8_t> out, size_t* n) const override {
    size_t done = 0;
    while (done < out.size()) {
      ssize_t r = ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
      if (r < 0) {
        int err = errno;
        if (err == EINTR) continue;
        *n = done;
        return Status::FromErrno(name_ + ": read at offset " + std::to_string(offset + done), err);
      }
      if (r == 0) break;
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
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
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
  return std::unique_ptr<ByteSource>(new FileByteSource(fd, static_cast<uint64_t>(st.st_size), std::move(name)));
}

std::unique_ptr<ByteSource> MemoryByteSource(std::span<const uint8_t> bytes, std::string name) {
  return std::make_unique<MemorySource>(bytes, std::move(name));
}

}  // namespace lazyroot
