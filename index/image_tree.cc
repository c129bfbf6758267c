#include "index/image_tree.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <atomic>
#include <limits>
#include <mutex>
#include <unordered_map>

#include "index/limits.h"
#include "index/path_resolve.h"

// The byte layout below is documented in index/FORMAT.md ("Image tree file");
// change both together and bump kVersion.

namespace lazyroot {

static_assert(std::endian::native == std::endian::little, "the image tree format is read in place as little-endian");

namespace {

constexpr size_t kHeaderSize = 136;
constexpr size_t kNodeSize = 80;
constexpr size_t kDirentSize = 12;
constexpr size_t kXattrSize = 16;
constexpr size_t kSparseSize = 16;
constexpr size_t kLayerSize = 8;
constexpr size_t kCrcOffset = 124;
// The header's checksum covers [0, kCrcOffset) and [kCrcOffset + 4, body).
constexpr size_t kAfterCrc = kCrcOffset + 4;
// "sha256:" + 64 hex digits is 71; room for longer algorithms, not for junk.
constexpr uint32_t kMaxImageDigest = 255;

// Header field offsets.
enum : size_t {
  kHMagic = 0,
  kHVersion = 8,
  kHHeaderSize = 12,
  kHFileSize = 16,
  kHNodeCount = 24,
  kHDirentCount = 28,
  kHXattrCount = 32,
  kHSparseCount = 36,
  kHLayerCount = 40,
  kHFlags = 44,
  kHNodesOffset = 48,
  kHDirentsOffset = 56,
  kHXattrsOffset = 64,
  kHSparseOffset = 72,
  kHLayersOffset = 80,
  kHStringsOffset = 88,
  kHStringsSize = 96,
  kHImageDigest = 104,   // string reference: the manifest digest the tree was built for (version 2)
  kHBlockSize = 112,     // version 3: the body's block size
  kHBlockCount = 116,    // version 3: entries in the block table
  kHReserved = 120,      // 4 zero bytes up to the crc
  kHRegularBytes = 128,  // version 4: the sum of the regular nodes' sizes (what statfs reports)
};

constexpr uint32_t kMinBlockSize = 4096, kMaxBlockSize = 16u << 20;

// Where the body (the checksummed blocks) starts: after the header and a
// table of `blocks` crc32c values, at a multiple of 8.
uint64_t BodyOffset(uint64_t blocks) { return (kHeaderSize + 4 * blocks + 7) & ~uint64_t{7}; }

// Node record field offsets.
enum : size_t {
  kNType = 0,
  kNReserved = 1,  // 3 zero bytes
  kNMode = 4,
  kNUid = 8,
  kNGid = 12,
  kNMtimeSec = 16,
  kNMtimeNsec = 24,
  kNNlink = 28,
  kNSize = 32,
  kNLayer = 40,
  kNParent = 44,
  kNDataOffset = 48,  // devices: rdev_major here, rdev_minor at +4
  kNStoredSize = 56,
  kNXattrFirst = 64,
  kNXattrCount = 68,
  kNA = 72,  // directory: first dirent; regular: first sparse extent; symlink: target offset
  kNB = 76,  // directory: dirent count; regular: sparse extent count; symlink: target length
};

template <typename T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename T>
void Store(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

// CRC-32C (Castagnoli, reflected 0x82F63B78), the checksum of iSCSI, ext4
// and leveldb. Slicing-by-8 in software; SSE4.2's crc32 instruction where the
// CPU has it (~10x faster, so that opening a large tree stays cheap).
struct Crc32cTables {
  std::array<std::array<uint32_t, 256>, 8> t{};
  constexpr Crc32cTables() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i) {
      for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
    }
  }
};
constexpr Crc32cTables kCrcTables;

uint32_t Crc32cSoftware(uint32_t crc, const uint8_t* p, size_t n) {
  const auto& t = kCrcTables.t;
  while (n >= 8) {
    uint64_t v = Load<uint64_t>(p) ^ crc;
    crc = t[7][v & 0xff] ^ t[6][(v >> 8) & 0xff] ^ t[5][(v >> 16) & 0xff] ^ t[4][(v >> 24) & 0xff] ^
          t[3][(v >> 32) & 0xff] ^ t[2][(v >> 40) & 0xff] ^ t[1][(v >> 48) & 0xff] ^ t[0][v >> 56];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) crc = (crc >> 8) ^ t[0][(crc ^ *p++) & 0xff];
  return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("sse4.2"))) uint32_t Crc32cHardware(uint32_t crc, const uint8_t* p, size_t n) {
  uint64_t c = crc;
  while (n >= 8) {
    c = __builtin_ia32_crc32di(c, Load<uint64_t>(p));
    p += 8;
    n -= 8;
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  while (n-- > 0) c32 = __builtin_ia32_crc32qi(c32, *p++);
  return c32;
}
bool HaveSse42() {
  static const bool have = __builtin_cpu_supports("sse4.2");
  return have;
}
#endif

// Extends a finished CRC-32C `crc` (0 for none) with `n` bytes.
uint32_t Crc32cExtend(uint32_t crc, const uint8_t* p, size_t n) {
  crc = ~crc;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (HaveSse42()) return ~Crc32cHardware(crc, p, n);
#endif
  return ~Crc32cSoftware(crc, p, n);
}

// The header's checksum: the header but for the checksum field, then the
// block table up to the body (which its entries checksum, block by block).
uint32_t HeaderCrc(const uint8_t* data, uint64_t body_offset) {
  uint32_t crc = Crc32cExtend(0, data, kCrcOffset);
  return Crc32cExtend(crc, data + kAfterCrc, body_offset - kAfterCrc);
}

// a + b, or the largest value if that overflows: what the header records as
// the regular nodes' total size (a hostile or absurd tree may claim sizes
// whose sum does not fit; the writer, the check and statfs agree on it).
uint64_t SaturatingAdd(uint64_t a, uint64_t b) {
  return a > std::numeric_limits<uint64_t>::max() - b ? std::numeric_limits<uint64_t>::max() : a + b;
}

bool ValidType(uint8_t t) { return t >= 1 && t <= 6; }

}  // namespace

// ---------------------------------------------------------------------------
// Storage: the bytes, in memory. Never a mapping of the store file: a mapped
// file truncated under a live mount raises SIGBUS on the next access to a
// page past the new end, and one rewritten in place changes records after
// validation (MAP_PRIVATE only copies pages we write). Heap bytes are
// 16-byte aligned by operator new; the accessors load fields with memcpy, so
// no alignment beyond that is needed.
//
// OpenFile puts a tree of 2 MiB or more in anonymous memory it maps itself
// (memory, not the file) with transparent huge pages asked for: filling
// 10 MB of fresh 4 KiB pages costs ~2,500 page faults, about half of what
// opening a 100k-file tree took with the file in the page cache (4.5 ms of
// a warm open, 2.3 ms with huge pages, measured here).

// Anonymous memory for OpenFile's read; null if mmap fails (then the heap).
// A lazy tree's buffer asks for no huge pages: it is filled a block at a time
// and mostly never, and untouched pages of plain anonymous memory cost
// nothing, where one huge page is 2 MiB to zero for a 64 KiB block.
struct MappedBuffer {
  uint8_t* data = nullptr;
  size_t size = 0;
  MappedBuffer(size_t n, bool huge) {
    void* p = ::mmap(nullptr, std::max<size_t>(n, 1), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return;
#ifdef MADV_HUGEPAGE
    if (huge) (void)::madvise(p, n, MADV_HUGEPAGE);  // advice only: without THP the pages are 4 KiB
#else
    (void)huge;
#endif
    data = static_cast<uint8_t*>(p);
    size = n;
  }
  ~MappedBuffer() {
    if (data != nullptr) ::munmap(data, std::max<size_t>(size, 1));
  }
  MappedBuffer(const MappedBuffer&) = delete;
  MappedBuffer& operator=(const MappedBuffer&) = delete;
};

// A lazy tree's file and which of its blocks and nodes are read and checked.
// A block is read once, under `mu`, into its place in the tree's buffer, and
// published by a release store of its state; readers load the state with
// acquire before they touch the bytes. Nothing is ever unloaded, so a
// pointer into a loaded block stays valid as long as the tree.
struct ImageTree::Lazy {
  enum : uint8_t { kUnread = 0, kGood = 1, kBad = 2 };
  int fd = -1;                  // OpenFileLazy: read with pread
  std::vector<uint8_t> source;  // OpenLazy: the file's bytes
  uint64_t file_size = 0;
  std::unique_ptr<MappedBuffer> buffer;  // file_size bytes, the header and read blocks filled in
  std::vector<uint32_t> block_crcs;
  std::unique_ptr<std::atomic<uint8_t>[]> blocks;  // per block: kUnread, kGood, kBad
  std::unique_ptr<std::atomic<uint8_t>[]> nodes;   // per node: kUnread (unchecked), kGood, kBad
  std::mutex mu;                                   // serialises block reads
  std::string image;                               // the image digest, for messages
  // Which node owns each dirent, xattr and sparse record (id + 1; 0: none
  // yet). A node claims its ranges when it is checked, and a record another
  // node owns fails it: the lazy form of the tiling rule, so that checking
  // every node still looks at each record once (without it, directories
  // all claiming one big sorted range would cost directories x range).
  // Anonymous memory: untouched, it costs nothing.
  enum Table { kDirents, kXattrs, kSparse };
  std::unique_ptr<MappedBuffer> owners[3];

  // Claims records [first, first + count) of `table` for node `id`.
  bool Claim(Table table, uint64_t first, uint64_t count, NodeId id) {
    auto* slots = reinterpret_cast<uint32_t*>(owners[table]->data);
    for (uint64_t k = first; k < first + count; ++k) {
      uint32_t expected = 0;
      std::atomic_ref<uint32_t> slot(slots[k]);
      if (!slot.compare_exchange_strong(expected, id + 1) && expected != id + 1) return false;
    }
    return true;
  }

  Lazy() = default;
  Lazy(const Lazy&) = delete;
  Lazy& operator=(const Lazy&) = delete;
  ~Lazy() {
    if (fd >= 0) ::close(fd);
  }

  // Reads [offset, offset + n) of the file into dst; Corruption when it
  // ends first (truncated since it was opened).
  Status Read(uint64_t offset, size_t n, uint8_t* dst) const {
    if (fd < 0) {
      if (offset > source.size() || n > source.size() - offset) {
        return Status::Corruption("ends at " + std::to_string(source.size()) + " of " + std::to_string(file_size) +
                                  " bytes (truncated)");
      }
      if (n > 0) std::memcpy(dst, source.data() + offset, n);
      return Status::Ok();
    }
    for (size_t done = 0; done < n;) {
      ssize_t r = ::pread(fd, dst + done, n - done, static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        return Status::FromErrno("read at offset " + std::to_string(offset + done), errno);
      }
      if (r == 0) {
        return Status::Corruption("ends at " + std::to_string(offset + done) + " of " + std::to_string(file_size) +
                                  " bytes (truncated)");
      }
      done += static_cast<size_t>(r);
    }
    return Status::Ok();
  }
};

struct ImageTree::Storage {
  std::string name;
  std::vector<uint8_t> owned;                   // Open: the caller's bytes
  std::unique_ptr<uint8_t[]> read;              // OpenFile: not zero-filled before the read
  std::unique_ptr<MappedBuffer> mapped;         // OpenFile, 2 MiB or more: huge pages where there are
  size_t read_size = 0;
  std::unique_ptr<Lazy> lazy;  // OpenFileLazy, OpenLazy: the bytes are in lazy->buffer
  const uint8_t* data() const {
    return lazy ? lazy->buffer->data : mapped ? mapped->data : read ? read.get() : owned.data();
  }
  size_t size() const { return lazy ? lazy->file_size : mapped || read ? read_size : owned.size(); }
};

const std::string& ImageTree::name() const {
  static const std::string kEmpty;
  return storage_ ? storage_->name : kEmpty;
}

Result<ImageTree> ImageTree::Open(std::vector<uint8_t> bytes, std::string name) {
  auto storage = std::make_shared<Storage>();
  storage->name = std::move(name);
  storage->owned = std::move(bytes);
  return FromStorage(std::move(storage));
}

Result<ImageTree> ImageTree::OpenFile(const std::string& path) {
  // O_NONBLOCK: a FIFO put where the tree belongs must not hang the open.
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("image tree " + path + ": open", errno);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0) return Status::FromErrno("image tree " + path + ": fstat", errno);
  if (!S_ISREG(st.st_mode)) return Status::Corruption("image tree " + path + ": not a regular file");
  // The 32-bit counts bound a valid file well below this; a larger one is
  // not read at all. One whose header is not a tree header of its size costs
  // one 128-byte read: garbage in the store never costs its size in memory.
  constexpr uint64_t kMaxTreeFile = uint64_t{1} << 36;
  if (st.st_size < 0 || static_cast<uint64_t>(st.st_size) > kMaxTreeFile) {
    return Status::Corruption("image tree " + path + ": implausible size " + std::to_string(st.st_size));
  }
  const auto size = static_cast<size_t>(st.st_size);
  if (size >= kHeaderSize) {
    uint8_t h[kHeaderSize];
    ssize_t r;
    do {
      r = ::pread(fd, h, kHeaderSize, 0);
    } while (r < 0 && errno == EINTR);
    if (r < 0) return Status::FromErrno("image tree " + path + ": read", errno);
    if (static_cast<size_t>(r) == kHeaderSize && std::memcmp(h + kHMagic, kMagic, 8) == 0 &&
        Load<uint32_t>(h + kHVersion) == kVersion && Load<uint64_t>(h + kHFileSize) != size) {
      return Status::Corruption("image tree " + path + ": file size " + std::to_string(size) +
                                " does not match the header's " + std::to_string(Load<uint64_t>(h + kHFileSize)) +
                                " (truncated?)");
    }
    if (static_cast<size_t>(r) < kHeaderSize || std::memcmp(h + kHMagic, kMagic, 8) != 0 ||
        Load<uint32_t>(h + kHVersion) != kVersion) {
      // Validate says which (bad magic, older version) from the header alone.
      auto storage = std::make_shared<Storage>();
      storage->name = path;
      storage->owned.assign(h, h + std::min<size_t>(static_cast<size_t>(r), kHeaderSize));
      return FromStorage(std::move(storage));
    }
  }
  auto storage = std::make_shared<Storage>();
  storage->name = path;
  if (size >= (size_t{2} << 20)) {
    auto mapped = std::make_unique<MappedBuffer>(size, true);
    if (mapped->data != nullptr) storage->mapped = std::move(mapped);
  }
  if (!storage->mapped) storage->read.reset(new uint8_t[std::max<size_t>(size, 1)]);
  storage->read_size = size;
  uint8_t* buf = storage->mapped ? storage->mapped->data : storage->read.get();
  constexpr size_t kPiece = size_t{1} << 20;
  for (size_t done = 0; done < size;) {
    ssize_t r = ::pread(fd, buf + done, std::min(size - done, kPiece), static_cast<off_t>(done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("image tree " + path + ": read at offset " + std::to_string(done), errno);
    }
    if (r == 0) {
      // Truncated between fstat and read: whatever it became, it is not the
      // file we sized. Corruption, so that the caller rebuilds it.
      return Status::Corruption("image tree " + path + ": ends at " + std::to_string(done) + " of " +
                                std::to_string(size) + " bytes (truncated while being read)");
    }
    done += static_cast<size_t>(r);
  }
  return FromStorage(std::move(storage));
}

Result<ImageTree> ImageTree::OpenFileLazy(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("image tree " + path + ": open", errno);
  auto lazy = std::make_unique<Lazy>();
  lazy->fd = fd;  // closed with it
  struct stat st;
  if (::fstat(fd, &st) != 0) return Status::FromErrno("image tree " + path + ": fstat", errno);
  if (!S_ISREG(st.st_mode)) return Status::Corruption("image tree " + path + ": not a regular file");
  constexpr uint64_t kMaxTreeFile = uint64_t{1} << 36;
  if (st.st_size < 0 || static_cast<uint64_t>(st.st_size) > kMaxTreeFile) {
    return Status::Corruption("image tree " + path + ": implausible size " + std::to_string(st.st_size));
  }
  lazy->file_size = static_cast<uint64_t>(st.st_size);
  return OpenLazyFrom(std::move(lazy), path);
}

Result<ImageTree> ImageTree::OpenLazy(std::vector<uint8_t> bytes, std::string name) {
  auto lazy = std::make_unique<Lazy>();
  lazy->file_size = bytes.size();
  lazy->source = std::move(bytes);
  return OpenLazyFrom(std::move(lazy), std::move(name));
}

Result<ImageTree> ImageTree::OpenLazyFrom(std::unique_ptr<Lazy> lazy, std::string name) {
  const uint64_t size = lazy->file_size;
  uint8_t h[kHeaderSize] = {};
  const bool current = size >= kHeaderSize && lazy->Read(0, kHeaderSize, h).ok() &&
                       std::memcmp(h + kHMagic, kMagic, 8) == 0 && Load<uint32_t>(h + kHVersion) == kVersion;
  if (!current) {
    // Garbage, a short file or another version: the eager reader says which.
    if (lazy->fd < 0) return Open(std::move(lazy->source), std::move(name));
    return OpenFile(name);
  }
  if (Load<uint64_t>(h + kHFileSize) != size) {
    return Status::Corruption("image tree " + name + ": file size " + std::to_string(size) +
                              " does not match the header's " + std::to_string(Load<uint64_t>(h + kHFileSize)) +
                              " (truncated?)");
  }
  const uint64_t body = BodyOffset(Load<uint32_t>(h + kHBlockCount));
  if (body > size) return Status::Corruption("image tree " + name + ": block table out of bounds");
  lazy->buffer = std::make_unique<MappedBuffer>(static_cast<size_t>(size), false);
  if (lazy->buffer->data == nullptr) {
    return Status::IoError("image tree " + name + ": out of memory for " + std::to_string(size) + " bytes");
  }
  std::memcpy(lazy->buffer->data, h, kHeaderSize);
  Status st = lazy->Read(kHeaderSize, static_cast<size_t>(body - kHeaderSize), lazy->buffer->data + kHeaderSize);
  if (!st.ok()) return st.WithContext("image tree " + name);
  auto storage = std::make_shared<Storage>();
  storage->name = std::move(name);
  storage->lazy = std::move(lazy);
  return FromStorage(std::move(storage));
}

Result<ImageTree> ImageTree::FromStorage(std::shared_ptr<const Storage> storage) {
  ImageTree tree;
  tree.data_ = storage->data();
  tree.size_ = storage->size();
  tree.lazy_ = storage->lazy.get();
  tree.storage_ = std::move(storage);
  Status st = tree.Validate();
  if (!st.ok()) return st.WithContext("image tree " + tree.name());
  return tree;
}

// Everything a later accessor relies on is checked here, once, so that the
// accessors can read records without further checks and a corrupt or hostile
// file is an error rather than an out-of-bounds read or an endless walk.
// A lazy tree gets the header checks and those of what every open needs (the
// names of the image and layers, the root); each other node is checked the
// same way by CheckNode on its first use.
Status ImageTree::Validate() {
  LAZYROOT_RETURN_IF_ERROR(ValidateHeader());
  const uint8_t* d = data_;
  auto string_ok = [&](uint32_t offset, uint32_t length) { return uint64_t{offset} + length <= strings_size_; };
  bool fresh = true;
  LAZYROOT_RETURN_IF_ERROR(Need(strings_offset_ + image_digest_offset_, image_digest_size_, &fresh));
  LAZYROOT_RETURN_IF_ERROR(Need(layers_offset_, uint64_t{layer_count_} * kLayerSize, &fresh));
  for (uint32_t i = 0; i < layer_count_; ++i) {
    const uint8_t* r = d + layers_offset_ + uint64_t{i} * kLayerSize;
    if (!string_ok(Load<uint32_t>(r), Load<uint32_t>(r + 4))) {
      return Status::Corruption("layer " + std::to_string(i) + ": digest out of bounds");
    }
    LAZYROOT_RETURN_IF_ERROR(Need(strings_offset_ + Load<uint32_t>(r), Load<uint32_t>(r + 4), &fresh));
  }
  if (lazy_ != nullptr) {
    lazy_->image = std::string(ImageDigest());
    lazy_->nodes = std::make_unique<std::atomic<uint8_t>[]>(node_count_);
    const uint64_t counts[3] = {dirent_count_, xattr_count_, sparse_count_};
    for (int t = 0; t < 3; ++t) {
      lazy_->owners[t] = std::make_unique<MappedBuffer>(static_cast<size_t>(counts[t] * 4), false);
      if (lazy_->owners[t]->data == nullptr) return Status::IoError("out of memory");
    }
    // The root: every mount's first request needs it, and a tree whose root
    // is damaged is better rebuilt now than served as an empty mount.
    LAZYROOT_RETURN_IF_ERROR(CheckNode(kRoot, &fresh, nullptr));
    lazy_->nodes[kRoot].store(Lazy::kGood, std::memory_order_release);
    return Status::Ok();
  }

  // Linear work whatever the file says. The record ranges of the nodes tile
  // their tables in node order (FORMAT.md, "Validation"): each node's first
  // xattr, each directory's first dirent and each regular file's first
  // extent is where the previous one's range ended, and the ranges add up to
  // the table. So every dirent, xattr and extent is looked at once, and a file
  // whose directories all claim one big range fails at the second of them
  // instead of costing (directories x range) steps: the tiling is checked
  // before CheckNode walks a range.
  uint64_t next_dirent = 0, next_xattr = 0, next_sparse = 0;
  // A directory other than the root is reachable through exactly one dirent,
  // from its recorded parent, which has a smaller id: the dirents form a tree
  // and every walk from the root terminates. Other nodes are reachable
  // through at least one dirent (more are hardlinks).
  std::vector<uint8_t> seen(node_count_, 0);
  uint64_t dirs = 0, dirs_referenced = 0;
  uint64_t work = 0, regular_bytes = 0;
  for (uint32_t i = 0; i < node_count_; ++i) {
    const uint8_t* r = d + nodes_offset_ + uint64_t{i} * kNodeSize;
    auto fail = [&](std::string_view what) {
      return Status::Corruption("node " + std::to_string(i) + ": " + std::string(what));
    };
    const uint8_t type = r[kNType];
    if (!ValidType(type)) return fail("bad type " + std::to_string(type));
    if (i > 0 && !seen[i] && type == static_cast<uint8_t>(NodeType::kDirectory)) {
      return fail("directory not reachable from its parent");
    }
    const uint32_t xfirst = Load<uint32_t>(r + kNXattrFirst), xcount = Load<uint32_t>(r + kNXattrCount);
    if (xfirst != next_xattr) return fail("xattr range does not start where the previous node's ended");
    next_xattr += xcount;
    const uint32_t a = Load<uint32_t>(r + kNA), b = Load<uint32_t>(r + kNB);
    const auto node_type = static_cast<NodeType>(type);
    if (node_type == NodeType::kDirectory) {
      if (a != next_dirent) return fail("dirent range does not start where the previous directory's ended");
      next_dirent += b;
    } else if (node_type == NodeType::kRegular) {
      if (a != next_sparse) return fail("sparse range does not start where the previous file's ended");
      next_sparse += b;
      regular_bytes = SaturatingAdd(regular_bytes, Load<uint64_t>(r + kNSize));
    }
    LAZYROOT_RETURN_IF_ERROR(CheckNode(i, &fresh, &work));
    if (node_type != NodeType::kDirectory) continue;
    ++dirs;
    for (uint32_t k = 0; k < b; ++k) {
      const NodeId child = Load<uint32_t>(d + dirents_offset_ + (uint64_t{a} + k) * kDirentSize + 8);
      const uint8_t* c = d + nodes_offset_ + uint64_t{child} * kNodeSize;  // CheckNode: 0 < child < node_count
      if (c[kNType] == static_cast<uint8_t>(NodeType::kDirectory)) {
        if (child <= i || Load<uint32_t>(c + kNParent) != i || seen[child]) {
          return fail("directory linked more than once or out of order");
        }
        ++dirs_referenced;
      }
      seen[child] = 1;
    }
  }
  if (dirs_referenced + 1 != dirs) return Status::Corruption("unreachable directories");
  for (uint32_t i = 1; i < node_count_; ++i) {
    if (!seen[i]) return Status::Corruption("node " + std::to_string(i) + ": not named by any directory");
  }
  if (next_dirent != dirent_count_ || next_xattr != xattr_count_ || next_sparse != sparse_count_) {
    return Status::Corruption("records that belong to no node");
  }
  if (regular_bytes != regular_bytes_) {
    return Status::Corruption("the header's total of regular file sizes, " + std::to_string(regular_bytes_) +
                              " bytes, is not the nodes' " + std::to_string(regular_bytes));
  }
  validation_work_ = work;
  return Status::Ok();
}

// The header, the block table, and (read whole) every block's checksum.
Status ImageTree::ValidateHeader() {
  const uint8_t* d = data_;
  if (size_ < kHeaderSize)
    return Status::Corruption("file too short for a header (" + std::to_string(size_) + " bytes)");
  if (std::memcmp(d + kHMagic, kMagic, 8) != 0) return Status::Corruption("bad magic (not an image tree file)");
  if (uint32_t v = Load<uint32_t>(d + kHVersion); v != kVersion) {
    return Status::Corruption("format version " + std::to_string(v) + (v < kVersion ? " (older lazyroot)" : "") +
                              ", this lazyroot reads version " + std::to_string(kVersion));
  }
  if (Load<uint32_t>(d + kHHeaderSize) != kHeaderSize) return Status::Corruption("bad header size");
  if (Load<uint64_t>(d + kHFileSize) != size_) {
    return Status::Corruption("file size " + std::to_string(size_) + " does not match the header's " +
                              std::to_string(Load<uint64_t>(d + kHFileSize)) + " (truncated?)");
  }
  block_size_ = Load<uint32_t>(d + kHBlockSize);
  block_count_ = Load<uint32_t>(d + kHBlockCount);
  body_offset_ = BodyOffset(block_count_);
  if (body_offset_ > size_) return Status::Corruption("block table out of bounds");
  if (Load<uint32_t>(d + kCrcOffset) != HeaderCrc(d, body_offset_)) return Status::Corruption("header checksum mismatch");
  if (!std::has_single_bit(block_size_) || block_size_ < kMinBlockSize || block_size_ > kMaxBlockSize) {
    return Status::Corruption("bad block size " + std::to_string(block_size_));
  }
  if (block_count_ != (size_ - body_offset_ + block_size_ - 1) / block_size_) {
    return Status::Corruption("block count " + std::to_string(block_count_) + " does not cover the file");
  }
  if (Load<uint32_t>(d + kHFlags) != 0) return Status::Corruption("unknown flags");
  for (size_t i = kHReserved; i < kCrcOffset; ++i) {
    if (d[i] != 0) return Status::Corruption("reserved header bytes are not zero");
  }
  if (lazy_ != nullptr) {
    lazy_->block_crcs.resize(block_count_);
    for (uint32_t k = 0; k < block_count_; ++k) lazy_->block_crcs[k] = Load<uint32_t>(d + kHeaderSize + 4 * uint64_t{k});
    lazy_->blocks = std::make_unique<std::atomic<uint8_t>[]>(block_count_);
  } else {
    for (uint32_t k = 0; k < block_count_; ++k) {
      const uint64_t at = body_offset_ + uint64_t{k} * block_size_;
      const uint64_t n = std::min<uint64_t>(block_size_, size_ - at);
      if (Crc32cExtend(0, d + at, n) != Load<uint32_t>(d + kHeaderSize + 4 * uint64_t{k})) {
        return Status::Corruption("block " + std::to_string(k) + " (bytes " + std::to_string(at) + "-" +
                                  std::to_string(at + n) + "): checksum mismatch");
      }
    }
  }

  node_count_ = Load<uint32_t>(d + kHNodeCount);
  dirent_count_ = Load<uint32_t>(d + kHDirentCount);
  xattr_count_ = Load<uint32_t>(d + kHXattrCount);
  sparse_count_ = Load<uint32_t>(d + kHSparseCount);
  layer_count_ = Load<uint32_t>(d + kHLayerCount);
  nodes_offset_ = Load<uint64_t>(d + kHNodesOffset);
  dirents_offset_ = Load<uint64_t>(d + kHDirentsOffset);
  xattrs_offset_ = Load<uint64_t>(d + kHXattrsOffset);
  sparse_offset_ = Load<uint64_t>(d + kHSparseOffset);
  layers_offset_ = Load<uint64_t>(d + kHLayersOffset);
  strings_offset_ = Load<uint64_t>(d + kHStringsOffset);
  strings_size_ = Load<uint64_t>(d + kHStringsSize);
  regular_bytes_ = Load<uint64_t>(d + kHRegularBytes);  // any value; Validate compares it with the nodes

  auto section_ok = [&](uint64_t offset, uint64_t count, uint64_t record) {
    // count < 2^32 and record <= 80, so count * record cannot overflow.
    return offset >= body_offset_ && offset % 8 == 0 && offset <= size_ && count * record <= size_ - offset;
  };
  if (node_count_ == 0) return Status::Corruption("no nodes");
  if (!section_ok(nodes_offset_, node_count_, kNodeSize)) return Status::Corruption("node table out of bounds");
  if (!section_ok(dirents_offset_, dirent_count_, kDirentSize)) return Status::Corruption("dirent table out of bounds");
  if (!section_ok(xattrs_offset_, xattr_count_, kXattrSize)) return Status::Corruption("xattr table out of bounds");
  if (!section_ok(sparse_offset_, sparse_count_, kSparseSize)) return Status::Corruption("sparse table out of bounds");
  if (!section_ok(layers_offset_, layer_count_, kLayerSize)) return Status::Corruption("layer table out of bounds");
  if (strings_size_ > std::numeric_limits<uint32_t>::max() || !section_ok(strings_offset_, strings_size_, 1)) {
    return Status::Corruption("string pool out of bounds");
  }
  image_digest_offset_ = Load<uint32_t>(d + kHImageDigest);
  image_digest_size_ = Load<uint32_t>(d + kHImageDigest + 4);
  if (uint64_t{image_digest_offset_} + image_digest_size_ > strings_size_ || image_digest_size_ > kMaxImageDigest) {
    return Status::Corruption("image digest out of bounds");
  }
  return Status::Ok();
}

Status ImageTree::Need(uint64_t offset, uint64_t length, bool* fresh) const {
  if (lazy_ == nullptr || length == 0) return Status::Ok();
  const uint64_t end = offset + length;  // callers pass ranges within the file
  if (end <= body_offset_) return Status::Ok();
  const uint64_t first = offset <= body_offset_ ? 0 : (offset - body_offset_) / block_size_;
  const uint64_t last = (end - 1 - body_offset_) / block_size_;
  for (uint64_t k = first; k <= last; ++k) {
    std::atomic<uint8_t>& state = lazy_->blocks[k];
    if (state.load(std::memory_order_acquire) == Lazy::kGood) continue;
    const uint64_t at = body_offset_ + k * block_size_;
    const uint64_t n = std::min<uint64_t>(block_size_, size_ - at);
    auto bad = [&](const std::string& why) {
      return Status::Corruption("block " + std::to_string(k) + " (bytes " + std::to_string(at) + "-" +
                                std::to_string(at + n) + "): " + why);
    };
    std::lock_guard<std::mutex> lock(lazy_->mu);
    const uint8_t now = state.load(std::memory_order_acquire);
    if (now == Lazy::kGood) continue;
    if (now == Lazy::kBad) {
      *fresh = false;
      return bad("damaged (reported before)");
    }
    uint8_t* dst = lazy_->buffer->data + at;
    Status st = lazy_->Read(at, static_cast<size_t>(n), dst);
    if (st.ok() && Crc32cExtend(0, dst, n) != lazy_->block_crcs[k]) st = Status::Corruption("checksum mismatch");
    if (!st.ok()) {
      // Whatever was read must not be served: zero it (other threads only
      // read a block after seeing kGood, which it never gets).
      std::memset(dst, 0, n);
      state.store(Lazy::kBad, std::memory_order_release);
      return bad(st.message());
    }
    state.store(Lazy::kGood, std::memory_order_release);
  }
  return Status::Ok();
}

// The checks of one node's own records: FORMAT.md's "What a reader
// validates", items 4-7, except the tiling and tree-shape rules (Validate
// adds those for a whole-file open). Each record of the node's ranges is
// looked at once.
Status ImageTree::CheckNode(NodeId i, bool* fresh, uint64_t* work) const {
  const uint8_t* d = data_;
  auto fail = [&](std::string_view what) {
    return Status::Corruption("node " + std::to_string(i) + ": " + std::string(what));
  };
  auto count = [&] {
    if (work != nullptr) ++*work;
  };
  auto string_ok = [&](uint32_t offset, uint32_t length) { return uint64_t{offset} + length <= strings_size_; };
  auto string = [&](uint32_t offset, uint32_t length) -> Result<std::string_view> {
    LAZYROOT_RETURN_IF_ERROR(Need(strings_offset_ + offset, length, fresh));
    return String(offset, length);
  };
  const uint64_t at = nodes_offset_ + uint64_t{i} * kNodeSize;
  LAZYROOT_RETURN_IF_ERROR(Need(at, kNodeSize, fresh));
  const uint8_t* r = d + at;
  count();
  const uint8_t type = r[kNType];
  if (!ValidType(type)) return fail("bad type " + std::to_string(type));
  if (r[1] != 0 || r[2] != 0 || r[3] != 0) return fail("reserved bytes are not zero");
  if (Load<uint32_t>(r + kNMode) > 07777) return fail("bad mode");
  if (Load<uint32_t>(r + kNMtimeNsec) >= 1000000000u) return fail("bad mtime nanoseconds");
  const uint32_t xfirst = Load<uint32_t>(r + kNXattrFirst), xcount = Load<uint32_t>(r + kNXattrCount);
  if (uint64_t{xfirst} + xcount > xattr_count_) return fail("xattrs out of bounds");
  if (lazy_ != nullptr && !lazy_->Claim(Lazy::kXattrs, xfirst, xcount, i)) {
    return fail("xattr range overlaps another node's");
  }
  LAZYROOT_RETURN_IF_ERROR(Need(xattrs_offset_ + uint64_t{xfirst} * kXattrSize, uint64_t{xcount} * kXattrSize, fresh));
  uint64_t xattr_bytes = 0;
  std::string_view prev_name;
  for (uint32_t k = 0; k < xcount; ++k) {
    count();
    const uint8_t* x = d + xattrs_offset_ + (uint64_t{xfirst} + k) * kXattrSize;
    const uint32_t name_len = Load<uint32_t>(x + 4), value_len = Load<uint32_t>(x + 12);
    if (!string_ok(Load<uint32_t>(x), name_len) || name_len == 0 || !string_ok(Load<uint32_t>(x + 8), value_len)) {
      return fail("xattr record " + std::to_string(xfirst + k) + " out of bounds");
    }
    if (name_len > Limits::kMaxXattrName || value_len > Limits::kMaxXattrValue) {
      return fail("xattr record " + std::to_string(xfirst + k) + " over the kernel's name or value size");
    }
    xattr_bytes += uint64_t{name_len} + value_len;
    if (xattr_bytes > Limits::kMaxXattrsPerEntry) return fail("xattrs over the kernel's total per file");
    LAZYROOT_ASSIGN_OR_RETURN(std::string_view name, string(Load<uint32_t>(x), name_len));
    LAZYROOT_RETURN_IF_ERROR(string(Load<uint32_t>(x + 8), value_len).status());
    if (k > 0 && prev_name >= name) return fail("xattrs not sorted");
    prev_name = name;
  }
  const uint32_t a = Load<uint32_t>(r + kNA), b = Load<uint32_t>(r + kNB);
  const NodeId parent = Load<uint32_t>(r + kNParent);
  const auto node_type = static_cast<NodeType>(type);
  if (i == kRoot && node_type != NodeType::kDirectory) return fail("the root is not a directory");
  switch (node_type) {
    case NodeType::kDirectory: {
      if (i == kRoot ? parent != 0 : parent >= i) return fail("bad parent");
      if (uint64_t{a} + b > dirent_count_) return fail("dirents out of bounds");
      if (lazy_ != nullptr && !lazy_->Claim(Lazy::kDirents, a, b, i)) {
        return fail("dirent range overlaps another directory's");
      }
      LAZYROOT_RETURN_IF_ERROR(Need(dirents_offset_ + uint64_t{a} * kDirentSize, uint64_t{b} * kDirentSize, fresh));
      std::string_view prev;
      for (uint32_t k = 0; k < b; ++k) {
        count();
        const uint8_t* e = d + dirents_offset_ + (uint64_t{a} + k) * kDirentSize;
        const uint32_t name_off = Load<uint32_t>(e), name_len = Load<uint32_t>(e + 4);
        const NodeId child = Load<uint32_t>(e + 8);
        if (!string_ok(name_off, name_len)) return fail("dirent name out of bounds");
        if (name_len == 0 || name_len > Limits::kMaxComponent) return fail("bad dirent name");
        LAZYROOT_ASSIGN_OR_RETURN(std::string_view name, string(name_off, name_len));
        if (name == "." || name == ".." || name.find('/') != std::string_view::npos ||
            name.find('\0') != std::string_view::npos) {
          return fail("bad dirent name");
        }
        if (k > 0 && !(prev < name)) return fail("dirents not sorted");
        prev = name;
        if (child == 0 || child >= node_count_) return fail("dirent points outside the node table");
      }
      break;
    }
    case NodeType::kRegular: {
      const uint64_t size = Load<uint64_t>(r + kNSize);
      const uint64_t data_offset = Load<uint64_t>(r + kNDataOffset), stored = Load<uint64_t>(r + kNStoredSize);
      if (data_offset > std::numeric_limits<uint64_t>::max() - stored) return fail("data range overflows");
      if (Load<uint32_t>(r + kNLayer) >= layer_count_) return fail("layer out of range");
      if (uint64_t{a} + b > sparse_count_) return fail("sparse map out of bounds");
      if (lazy_ != nullptr && !lazy_->Claim(Lazy::kSparse, a, b, i)) {
        return fail("sparse range overlaps another file's");
      }
      if (b == 0) {
        if (stored != size) return fail("stored size differs from size without a sparse map");
        break;
      }
      LAZYROOT_RETURN_IF_ERROR(Need(sparse_offset_ + uint64_t{a} * kSparseSize, uint64_t{b} * kSparseSize, fresh));
      uint64_t end = 0, total = 0;
      for (uint32_t k = 0; k < b; ++k) {
        count();
        const uint8_t* s = d + sparse_offset_ + (uint64_t{a} + k) * kSparseSize;
        const SparseExtent x{Load<uint64_t>(s), Load<uint64_t>(s + 8)};
        if (x.logical_offset < end || x.length > size || x.logical_offset > size - x.length) {
          return fail("bad sparse map");
        }
        end = x.logical_offset + x.length;
        total += x.length;  // <= size per extent, b < 2^32: no overflow
      }
      if (total != stored) return fail("sparse map does not add up to the stored size");
      break;
    }
    case NodeType::kSymlink: {
      if (!string_ok(a, b)) return fail("symlink target out of bounds");
      if (b > Limits::kMaxSymlinkTarget) {
        return fail("symlink target longer than the kernel's " + std::to_string(Limits::kMaxSymlinkTarget) +
                    " bytes or with a NUL");
      }
      LAZYROOT_ASSIGN_OR_RETURN(std::string_view target, string(a, b));
      if (target.find('\0') != std::string_view::npos) {
        return fail("symlink target longer than the kernel's " + std::to_string(Limits::kMaxSymlinkTarget) +
                    " bytes or with a NUL");
      }
      break;
    }
    case NodeType::kCharDevice:
    case NodeType::kBlockDevice:
    case NodeType::kFifo:
      break;
  }
  return Status::Ok();
}

void ImageTree::CheckLazily(NodeId id) const {
  std::atomic<uint8_t>& state = lazy_->nodes[id];
  const uint8_t now = state.load(std::memory_order_acquire);
  if (now == Lazy::kGood) return;
  auto describe = [&](const std::string& what) {
    return "image tree " + name() + " (image " + lazy_->image + "): " + what +
           "; `lazyroot fsck --repair` rebuilds it";
  };
  if (now == Lazy::kBad) throw TreeCorruptionError(describe("node " + std::to_string(id) + ": damaged"), false);
  bool fresh = true;
  Status st = CheckNode(id, &fresh, nullptr);
  if (st.ok()) {
    state.store(Lazy::kGood, std::memory_order_release);
    return;
  }
  uint8_t expected = Lazy::kUnread;
  const bool first = state.compare_exchange_strong(expected, Lazy::kBad) && fresh;
  throw TreeCorruptionError(describe(st.message()), first);
}

uint32_t ImageTree::blocks_read() const {
  if (lazy_ == nullptr) return 0;
  uint32_t n = 0;
  for (uint32_t k = 0; k < block_count_; ++k) n += lazy_->blocks[k].load(std::memory_order_acquire) != Lazy::kUnread;
  return n;
}

const uint8_t* ImageTree::NodeRecord(NodeId id) const {
  assert(id < node_count_);
  if (lazy_ != nullptr) CheckLazily(id);
  return data_ + nodes_offset_ + uint64_t{id} * kNodeSize;
}

std::string_view ImageTree::String(uint32_t offset, uint32_t length) const {
  return {reinterpret_cast<const char*>(data_ + strings_offset_ + offset), length};
}

uint32_t Node::StMode() const {
  uint32_t fmt = 0;
  switch (type) {
    case NodeType::kRegular:
      fmt = S_IFREG;
      break;
    case NodeType::kDirectory:
      fmt = S_IFDIR;
      break;
    case NodeType::kSymlink:
      fmt = S_IFLNK;
      break;
    case NodeType::kCharDevice:
      fmt = S_IFCHR;
      break;
    case NodeType::kBlockDevice:
      fmt = S_IFBLK;
      break;
    case NodeType::kFifo:
      fmt = S_IFIFO;
      break;
  }
  return fmt | mode;
}

Node ImageTree::GetNode(NodeId id) const {
  const uint8_t* r = NodeRecord(id);
  Node n;
  n.type = static_cast<NodeType>(r[kNType]);
  n.mode = Load<uint32_t>(r + kNMode);
  n.uid = Load<uint32_t>(r + kNUid);
  n.gid = Load<uint32_t>(r + kNGid);
  n.mtime_sec = Load<int64_t>(r + kNMtimeSec);
  n.mtime_nsec = Load<uint32_t>(r + kNMtimeNsec);
  n.nlink = Load<uint32_t>(r + kNNlink);
  n.size = Load<uint64_t>(r + kNSize);
  n.layer = Load<uint32_t>(r + kNLayer);
  n.parent = Load<uint32_t>(r + kNParent);
  n.xattr_count = Load<uint32_t>(r + kNXattrCount);
  uint32_t a = Load<uint32_t>(r + kNA), b = Load<uint32_t>(r + kNB);
  switch (n.type) {
    case NodeType::kRegular:
      n.data_offset = Load<uint64_t>(r + kNDataOffset);
      n.stored_size = Load<uint64_t>(r + kNStoredSize);
      n.sparse_count = b;
      break;
    case NodeType::kDirectory:
      n.child_count = b;
      break;
    case NodeType::kSymlink:
      n.symlink_target = String(a, b);
      break;
    case NodeType::kCharDevice:
    case NodeType::kBlockDevice:
      n.rdev_major = Load<uint32_t>(r + kNDataOffset);
      n.rdev_minor = Load<uint32_t>(r + kNDataOffset + 4);
      break;
    case NodeType::kFifo:
      break;
  }
  return n;
}

bool ImageTree::IsDir(NodeId id) const { return NodeRecord(id)[kNType] == static_cast<uint8_t>(NodeType::kDirectory); }
bool ImageTree::IsSymlink(NodeId id) const {
  return NodeRecord(id)[kNType] == static_cast<uint8_t>(NodeType::kSymlink);
}

std::string_view ImageTree::SymlinkTarget(NodeId id) const {
  const uint8_t* r = NodeRecord(id);
  if (r[kNType] != static_cast<uint8_t>(NodeType::kSymlink)) return {};
  return String(Load<uint32_t>(r + kNA), Load<uint32_t>(r + kNB));
}

uint32_t ImageTree::ChildCount(NodeId dir) const {
  const uint8_t* r = NodeRecord(dir);
  return r[kNType] == static_cast<uint8_t>(NodeType::kDirectory) ? Load<uint32_t>(r + kNB) : 0;
}

DirEntry ImageTree::ChildAt(NodeId dir, uint32_t index) const {
  assert(index < ChildCount(dir));
  const uint8_t* e = data_ + dirents_offset_ + (uint64_t{Load<uint32_t>(NodeRecord(dir) + kNA)} + index) * kDirentSize;
  return DirEntry{String(Load<uint32_t>(e), Load<uint32_t>(e + 4)), Load<uint32_t>(e + 8)};
}

std::optional<NodeId> ImageTree::Lookup(NodeId dir, std::string_view name) const {
  uint32_t lo = 0, hi = ChildCount(dir);
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    DirEntry e = ChildAt(dir, mid);
    int c = e.name.compare(name);
    if (c == 0) return e.node;
    if (c < 0) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return std::nullopt;
}

uint32_t ImageTree::XattrCount(NodeId id) const { return Load<uint32_t>(NodeRecord(id) + kNXattrCount); }

Xattr ImageTree::XattrAt(NodeId id, uint32_t index) const {
  const uint8_t* x =
      data_ + xattrs_offset_ + (uint64_t{Load<uint32_t>(NodeRecord(id) + kNXattrFirst)} + index) * kXattrSize;
  return Xattr{String(Load<uint32_t>(x), Load<uint32_t>(x + 4)), String(Load<uint32_t>(x + 8), Load<uint32_t>(x + 12))};
}

std::optional<std::string_view> ImageTree::GetXattr(NodeId id, std::string_view name) const {
  uint32_t lo = 0, hi = XattrCount(id);
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    Xattr x = XattrAt(id, mid);
    int c = x.name.compare(name);
    if (c == 0) return x.value;
    if (c < 0) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return std::nullopt;
}

uint32_t ImageTree::SparseCount(NodeId id) const {
  const uint8_t* r = NodeRecord(id);
  return r[kNType] == static_cast<uint8_t>(NodeType::kRegular) ? Load<uint32_t>(r + kNB) : 0;
}

SparseExtent ImageTree::SparseAt(NodeId id, uint32_t index) const {
  const uint8_t* s = data_ + sparse_offset_ + (uint64_t{Load<uint32_t>(NodeRecord(id) + kNA)} + index) * kSparseSize;
  return SparseExtent{Load<uint64_t>(s), Load<uint64_t>(s + 8)};
}

std::string_view ImageTree::ImageDigest() const { return String(image_digest_offset_, image_digest_size_); }

std::string_view ImageTree::LayerDigest(uint32_t index) const {
  assert(index < layer_count_);
  const uint8_t* l = data_ + layers_offset_ + uint64_t{index} * kLayerSize;
  return String(Load<uint32_t>(l), Load<uint32_t>(l + 4));
}

std::optional<NodeId> ImageTree::LookupPath(std::string_view path) const {
  NodeId n = kRoot;
  for (const std::string& name : CleanPathComponents(path)) {
    std::optional<NodeId> c = Lookup(n, name);
    if (!c) return std::nullopt;
    n = *c;
  }
  return n;
}

Result<NodeId> ImageTree::Resolve(std::string_view path) const {
  std::vector<std::string> components;
  // Keep ".." for ResolveInRoot: it must apply after symlink expansion.
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = std::min(path.find('/', pos), path.size());
    if (slash > pos) components.emplace_back(path.substr(pos, slash - pos));
    pos = slash + 1;
  }
  std::optional<Result<ResolvedPath<NodeId>>> walked;
  try {
    walked.emplace(ResolveInRoot(*this, components));
  } catch (const TreeCorruptionError& e) {
    return Status::Corruption(e.what());
  }
  auto& resolved = *walked;
  if (!resolved.ok()) return resolved.status().WithContext("resolve \"" + std::string(path) + "\"");
  if (resolved->nodes.empty()) return kRoot;
  if (!resolved->nodes.back()) return Status::NotFound("resolve \"" + std::string(path) + "\": no such file");
  return *resolved->nodes.back();
}

// ---------------------------------------------------------------------------
// ImageTreeWriter

struct ImageTreeWriter::Impl {
  std::vector<std::string> layer_digests;
  std::string image_digest;
  std::vector<uint8_t> nodes, dirents, xattrs, sparse;
  std::string strings;
  std::unordered_map<std::string_view, uint32_t> interned;
  uint64_t node_count = 0, dirent_count = 0, xattr_count = 0, sparse_count = 0;
  uint64_t regular_bytes = 0;  // the header's total (statfs)
  bool too_big = false;

  // Returns the pool offset of a copy of `s`.
  uint32_t Append(std::string_view s) {
    if (strings.size() + s.size() > std::numeric_limits<uint32_t>::max()) {
      too_big = true;
      return 0;
    }
    auto offset = static_cast<uint32_t>(strings.size());
    strings.append(s);
    return offset;
  }
  // Append, sharing equal strings: xattr names and values, symlink targets
  // repeat a lot across an image; file names mostly do not.
  uint32_t Intern(std::string_view s) {
    auto it = interned.find(s);
    if (it != interned.end()) return it->second;
    uint32_t offset = Append(s);
    interned.emplace(s, offset);
    return offset;
  }
  uint32_t Length(std::string_view s) {
    if (s.size() > std::numeric_limits<uint32_t>::max()) too_big = true;
    return static_cast<uint32_t>(s.size());
  }
  uint32_t Count32(uint64_t v) {
    if (v > std::numeric_limits<uint32_t>::max()) too_big = true;
    return static_cast<uint32_t>(v);
  }
};

ImageTreeWriter::ImageTreeWriter(std::vector<std::string> layer_digests, std::string image_digest)
    : impl_(std::make_unique<Impl>()) {
  impl_->layer_digests = std::move(layer_digests);
  impl_->image_digest = std::move(image_digest);
}

ImageTreeWriter::~ImageTreeWriter() = default;

void ImageTreeWriter::Reserve(size_t nodes, size_t dirents) {
  impl_->nodes.reserve(nodes * kNodeSize);
  impl_->dirents.reserve(dirents * kDirentSize);
}

void ImageTreeWriter::AddNode(const Node& node, std::span<const DirEntry> children, std::span<const Xattr> xattrs,
                              std::span<const SparseExtent> sparse) {
  Impl& w = *impl_;
  uint8_t r[kNodeSize] = {};
  r[kNType] = static_cast<uint8_t>(node.type);
  Store<uint32_t>(r + kNMode, node.mode);
  Store<uint32_t>(r + kNUid, node.uid);
  Store<uint32_t>(r + kNGid, node.gid);
  Store<int64_t>(r + kNMtimeSec, node.mtime_sec);
  Store<uint32_t>(r + kNMtimeNsec, node.mtime_nsec);
  Store<uint32_t>(r + kNNlink, node.nlink);
  Store<uint64_t>(r + kNSize, node.size);
  Store<uint32_t>(r + kNLayer, node.layer);
  Store<uint32_t>(r + kNParent, node.parent);
  Store<uint32_t>(r + kNXattrFirst, w.Count32(w.xattr_count));
  Store<uint32_t>(r + kNXattrCount, w.Count32(xattrs.size()));
  for (const Xattr& x : xattrs) {
    uint8_t e[kXattrSize];
    Store<uint32_t>(e, w.Intern(x.name));
    Store<uint32_t>(e + 4, w.Length(x.name));
    Store<uint32_t>(e + 8, w.Intern(x.value));
    Store<uint32_t>(e + 12, w.Length(x.value));
    w.xattrs.insert(w.xattrs.end(), e, e + kXattrSize);
    ++w.xattr_count;
  }
  switch (node.type) {
    case NodeType::kDirectory:
      Store<uint32_t>(r + kNA, w.Count32(w.dirent_count));
      Store<uint32_t>(r + kNB, w.Count32(children.size()));
      for (const DirEntry& c : children) {
        uint8_t e[kDirentSize];
        Store<uint32_t>(e, w.Append(c.name));
        Store<uint32_t>(e + 4, w.Length(c.name));
        Store<uint32_t>(e + 8, c.node);
        w.dirents.insert(w.dirents.end(), e, e + kDirentSize);
        ++w.dirent_count;
      }
      break;
    case NodeType::kRegular:
      w.regular_bytes = SaturatingAdd(w.regular_bytes, node.size);
      Store<uint64_t>(r + kNDataOffset, node.data_offset);
      Store<uint64_t>(r + kNStoredSize, node.stored_size);
      Store<uint32_t>(r + kNA, w.Count32(w.sparse_count));
      Store<uint32_t>(r + kNB, w.Count32(sparse.size()));
      for (const SparseExtent& x : sparse) {
        uint8_t e[kSparseSize];
        Store<uint64_t>(e, x.logical_offset);
        Store<uint64_t>(e + 8, x.length);
        w.sparse.insert(w.sparse.end(), e, e + kSparseSize);
        ++w.sparse_count;
      }
      break;
    case NodeType::kSymlink:
      Store<uint32_t>(r + kNA, w.Intern(node.symlink_target));
      Store<uint32_t>(r + kNB, w.Length(node.symlink_target));
      break;
    case NodeType::kCharDevice:
    case NodeType::kBlockDevice:
      Store<uint32_t>(r + kNDataOffset, node.rdev_major);
      Store<uint32_t>(r + kNDataOffset + 4, node.rdev_minor);
      break;
    case NodeType::kFifo:
      break;
  }
  w.nodes.insert(w.nodes.end(), r, r + kNodeSize);
  ++w.node_count;
}

Result<ImageTree> ImageTreeWriter::Finish(std::string name) {
  Impl& w = *impl_;
  std::vector<uint8_t> layers;
  for (const std::string& digest : w.layer_digests) {
    uint8_t e[kLayerSize];
    Store<uint32_t>(e, w.Intern(digest));
    Store<uint32_t>(e + 4, w.Length(digest));
    layers.insert(layers.end(), e, e + kLayerSize);
  }
  const uint32_t image_digest_offset = w.Intern(w.image_digest);
  const uint32_t image_digest_size = w.Length(w.image_digest);
  if (image_digest_size > kMaxImageDigest) {
    return Status::InvalidArgument("image tree " + name + ": image digest longer than " +
                                   std::to_string(kMaxImageDigest) + " bytes");
  }
  w.Count32(w.node_count);
  w.Count32(w.layer_digests.size());
  if (w.too_big) return Status::InvalidArgument("image tree " + name + ": too large for the format's 32-bit fields");
  auto align8 = [](uint64_t v) { return (v + 7) & ~uint64_t{7}; };
  // The sections are laid out from 0, then moved past the block table,
  // whose length depends on theirs.
  uint64_t off = 0;
  const uint64_t nodes_off = off;
  off = align8(off + w.nodes.size());
  const uint64_t dirents_off = off;
  off = align8(off + w.dirents.size());
  const uint64_t xattrs_off = off;
  off = align8(off + w.xattrs.size());
  const uint64_t sparse_off = off;
  off = align8(off + w.sparse.size());
  const uint64_t layers_off = off;
  off = align8(off + layers.size());
  const uint64_t strings_off = off;
  const uint64_t body_size = off + w.strings.size();
  const uint64_t block_size = ImageTree::kBlockSize;
  const uint64_t block_count = (body_size + block_size - 1) / block_size;
  if (block_count > std::numeric_limits<uint32_t>::max()) {
    return Status::InvalidArgument("image tree " + name + ": too large for the format's 32-bit fields");
  }
  const uint64_t body = BodyOffset(block_count);
  const uint64_t file_size = body + body_size;

  std::vector<uint8_t> out(file_size, 0);
  uint8_t* h = out.data();
  std::memcpy(h + kHMagic, ImageTree::kMagic, 8);
  Store<uint32_t>(h + kHVersion, ImageTree::kVersion);
  Store<uint32_t>(h + kHHeaderSize, kHeaderSize);
  Store<uint64_t>(h + kHFileSize, file_size);
  Store<uint32_t>(h + kHNodeCount, static_cast<uint32_t>(w.node_count));
  Store<uint32_t>(h + kHDirentCount, static_cast<uint32_t>(w.dirent_count));
  Store<uint32_t>(h + kHXattrCount, static_cast<uint32_t>(w.xattr_count));
  Store<uint32_t>(h + kHSparseCount, static_cast<uint32_t>(w.sparse_count));
  Store<uint32_t>(h + kHLayerCount, static_cast<uint32_t>(w.layer_digests.size()));
  Store<uint64_t>(h + kHNodesOffset, body + nodes_off);
  Store<uint64_t>(h + kHDirentsOffset, body + dirents_off);
  Store<uint64_t>(h + kHXattrsOffset, body + xattrs_off);
  Store<uint64_t>(h + kHSparseOffset, body + sparse_off);
  Store<uint64_t>(h + kHLayersOffset, body + layers_off);
  Store<uint64_t>(h + kHStringsOffset, body + strings_off);
  Store<uint64_t>(h + kHStringsSize, w.strings.size());
  Store<uint32_t>(h + kHImageDigest, image_digest_offset);
  Store<uint32_t>(h + kHImageDigest + 4, image_digest_size);
  Store<uint32_t>(h + kHBlockSize, static_cast<uint32_t>(block_size));
  Store<uint32_t>(h + kHBlockCount, static_cast<uint32_t>(block_count));
  Store<uint64_t>(h + kHRegularBytes, w.regular_bytes);
  auto put = [&](uint64_t at, const void* src, size_t n) {
    if (n > 0) std::memcpy(out.data() + body + at, src, n);
  };
  put(nodes_off, w.nodes.data(), w.nodes.size());
  put(dirents_off, w.dirents.data(), w.dirents.size());
  put(xattrs_off, w.xattrs.data(), w.xattrs.size());
  put(sparse_off, w.sparse.data(), w.sparse.size());
  put(layers_off, layers.data(), layers.size());
  put(strings_off, w.strings.data(), w.strings.size());
  for (uint64_t k = 0; k < block_count; ++k) {
    const uint64_t at = body + k * block_size;
    Store<uint32_t>(h + kHeaderSize + 4 * k, Crc32cExtend(0, out.data() + at, std::min(block_size, file_size - at)));
  }
  Store<uint32_t>(h + kCrcOffset, HeaderCrc(out.data(), body));

  impl_ = std::make_unique<Impl>();  // free the staging buffers; the writer is spent
  Result<ImageTree> tree = ImageTree::Open(std::move(out), name);
  if (!tree.ok()) return Status::InvalidArgument("inconsistent tree: " + tree.status().message());
  return tree;
}

}  // namespace lazyroot
