// CopyRootfs: a private, writable copy of an extracted rootfs (what
// `lazyroot extract --copy DIR` hands a VM instead of the shared cached tree).
//
// The copy is driven by the image tree, not by what is on disk: every tree
// directory is opened beneath the source root without following symlinks
// (extract_writer.h), and only the tree's names are copied, so the walk is one
// pass in node order (no recursion) and nothing outside the source is read.
// The caller checks the source with CompareRootfs first; each entry's type,
// permission bits, owner, xattrs (all of them: override_stat,
// security.capability, …) and mtime are taken from the source's lstat, so the
// copy is what the source is, in either extract mode. Hardlinks stay
// hardlinks (the tree's nodes); regular files keep their holes (SEEK_DATA /
// SEEK_HOLE, data runs by copy_file_range) or, with reflink, share the
// source's extents (FICLONE; no fallback: a file system that cannot clone is
// an error naming it).
//
// Like ExtractTree, the copy is written into a temp dir beside `to` and
// renamed into place at the end; any failure or interruption removes it, so
// `to` is either absent (or the empty dir it was) or complete.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "index/image_tree.h"
#include "index/status.h"

namespace lazyroot {

struct CopyOptions {
  // FICLONE every regular file (shared extents, copy-on-write); fail rather
  // than copy bytes when the file system cannot.
  bool reflink = false;
  // Nonzero (a signal number): stop at the next entry or data run, clean up,
  // return kAborted. See ExtractOptions::interrupted.
  const std::atomic<int>* interrupted = nullptr;
};

struct CopyReport {
  uint64_t files = 0, dirs = 0, symlinks = 0, hardlinks = 0, others = 0;
  uint64_t bytes = 0;  // file data bytes copied or cloned (holes excluded)
};

// Copies the extracted tree at `from` to `to`. Preconditions: `to` is absent
// (its parent exists) or an empty directory; `from` holds `tree` as extract
// wrote it. Returns InvalidArgument for an unusable `to`, Unsupported when
// reflink was asked for and the file system cannot (naming it), IoError
// naming the path for a failed system call, Aborted when interrupted.
Result<CopyReport> CopyRootfs(const ImageTree& tree, const std::string& from, const std::string& to,
                              const CopyOptions& options = {});

// A name for the file system holding `path` ("ext4", "tmpfs", …, or its
// magic number in hex), for messages.
std::string FileSystemName(const std::string& path);

}  // namespace lazyroot
