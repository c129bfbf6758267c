// CompareRootfs: is an extracted directory still what ExtractTree wrote for an
// image tree? `extract` asks before it hands out the cached rootfs (a VM given
// that directory as its root can write it), and `fsck` asks with contents.
//
// What is compared, per tree node, against lstat(2) of its path:
//  - every name of the tree exists, with the right file type (rootless:
//    character/block devices are the empty 0000 placeholders extract writes);
//  - permission bits as extract sets them (rootless: masked with
//    kRootlessModeMask; device placeholders 0000);
//  - owner: uid:gid of the image when extracted as root; rootless, the
//    on-disk owner is whoever extracted it, so what is checked is the
//    user.containers.override_stat xattr (image uid:gid:mode) on every
//    entry that carries one (all but symlinks and fifos);
//  - size of regular files, symlink targets (readlink), device numbers;
//  - mtime (seconds and nanoseconds) of files, symlinks and directories;
//  - with extracted_at_ns, ctime: no entry changed after the extract ended;
//  - hardlinks: all names of one node share one inode (and no other node's
//    inode); a name that became a separate copy is a difference;
//  - entries on disk that the tree does not have (added files).
// With options.contents, regular files' bytes are also read and compared with
// the image's bytes (ImageContent/ReadFileData; sparse holes read as zeros on
// both sides), one layer decoder per layer, files in stream order.
//
// Not compared: xattrs other than override_stat (a file system may refuse
// some: extract only warns), atime/ctime, the directory's own nlink.
//
// Design for hostile input (no fuzzer needed): the tree is validated on open
// (image_tree.h); the walk is iterative in node order (breadth-first ids, the
// parent of each directory already visited), so neither the tree's depth nor
// the disk's drives recursion; every directory is opened beneath the root with
// RESOLVE_NO_SYMLINKS (extract_writer.h), so a symlink planted on disk is never
// followed out of `dir` — it is reported as a type difference. Work is one
// lstat per tree name plus one readdir per tree directory, and stops once
// max_differences are found (0: no limit). Memory: O(node_count) words.
//
// Thread-safe (reads only). Returns the differences found (empty: equal);
// an error Status only when `dir` itself cannot be opened or a read of the
// image's bytes fails (Corruption/IoError naming the file).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "index/image_content.h"
#include "index/image_tree.h"
#include "index/status.h"

namespace lazyroot {

struct RootfsDifference {
  std::string path;  // relative to the rootfs, with a leading "/" ("/" is the root)
  std::string what;  // e.g. "mode 0644, image says 0755"
};

struct RootfsCheckOptions {
  bool contents = false;  // also compare file bytes (needs `content`)
  bool rootless = false;  // the tree was extracted in rootless mode (the .done marker says)
  size_t max_differences = 20;
  // When nonzero: when the extraction finished, in ns since the epoch (the
  // mtime of the .done marker written right after it). An entry whose ctime
  // is later was changed since — even if its size and mtime were put back
  // (`touch -r`), which only a content comparison would otherwise find: no
  // one can set a ctime, every write, chmod, chown, utime or link moves it.
  int64_t extracted_at_ns = 0;
};

// Compares an extracted directory with the image tree (types, sizes, modes, owners, link
// targets, mtimes; with contents, file bytes read via content). Stops after max_differences.
Result<std::vector<RootfsDifference>> CompareRootfs(const ImageTree& tree, const ImageContent* content,
                                                    const std::string& dir, const RootfsCheckOptions& options);

}  // namespace lazyroot
