// VerifiedByteSource: a ByteSource over a stored layer blob that returns only
// bytes it has checked against the blob's chunk digests (ChunkDigests,
// recorded by the pull while it verified the registry's digest). Every byte a
// ReadAt hands out lies in a chunk that was read from the blob, hashed and
// compared since — or in a verified chunk kept in a small process-wide cache
// (2 MiB, least recently used first), so a decoder reading 64 KiB at a time
// across chunk boundaries hashes each chunk once. Reads of at most 1 KiB (a
// mid-block point's block header, read again by every prime in that block)
// are also kept, by offset and length, in a second process-wide cache
// (1 MiB): a repeat does not verify the header's chunk again. Reads covering whole chunks
// go straight into the caller's buffer and are checked there.
//
// A chunk that does not match is kCorruption naming the blob and the byte
// range ("blob sha256:…: bytes 262144–327679 do not match the digest recorded
// at pull"); a blob shorter than recorded is kCorruption too. On an error no
// unverified byte is left in the caller's buffer. Size() is the size the pull
// recorded; bytes appended to the file are never read.
//
// Thread safety: ReadAt is safe for concurrent use (the cache has a mutex).
#pragma once

#include <memory>
#include <string>

#include "index/byte_source.h"
#include "index/chunk_digests.h"

namespace lazyroot {

// blob: the stored file (its Name() names the blob in errors); chunks: the
// digests from the blob's layer index. REQUIRES: chunks->digests.size() ==
// ChunkCount(chunks->blob_size, chunks->chunk_size) (LayerIndex::Parse checks it).
std::unique_ptr<ByteSource> NewVerifiedByteSource(std::unique_ptr<ByteSource> blob,
                                                  std::shared_ptr<const ChunkDigests> chunks);

// Bytes the process-wide cache of verified chunks holds now (tests).
uint64_t VerifiedChunkCacheBytes();
// Bytes (with a fixed overhead per read) the cache of small reads holds now (tests).
uint64_t VerifiedSmallReadCacheBytes();

}  // namespace lazyroot
