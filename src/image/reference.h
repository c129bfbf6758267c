// Reference: a parsed, normalised image reference, Docker-compatible.
//   alpine                      -> docker.io/library/alpine:latest
//   localhost:5000/a/b/c:tag    -> registry localhost:5000, repository a/b/c
//   name:tag@sha256:<64 hex>    -> the digest wins for fetching; the tag is kept for display
//   oci:DIR[:tag]               -> a local OCI image layout (transport kOciLayout); the
//                                  tag is what follows the last ':' when that part has no
//                                  '/' (skopeo); no tag means "the only image in the layout"
//   oci-archive:FILE[:tag]      -> a tar of an OCI image layout, tag read as for oci:
//   docker-archive:FILE[:ref]   -> a `docker save` tarball; as skopeo, FILE ends at the first
//                                  ':'; ref is a docker reference matched against RepoTags
//                                  (normalised: "busybox" is docker.io/library/busybox:latest)
//                                  or "@N", the N-th image of the archive
// Prefixes "docker://" and "https://" are stripped; "http://" sets plain_http.
// The grammar is distribution/reference's ParseNormalizedNamed: a first
// component with '.', ':', upper case, or "localhost" is the registry;
// index.docker.io becomes docker.io; docker.io names get "library/".
// ToString is the canonical form and the store's key: for every text
// ParseReference accepts, ParseReference(r.ToString()) succeeds and gives r
// again (same ToString, same fields; plain_http, a transport setting, is not
// part of the name). Hosts print lower-case, except one that is a host only
// by its upper case ("Foo/bar"): that one is kept as written, since lower
// case would read back as the Docker Hub repository foo/bar.
// Value type; thread-compatible.
#pragma once

#include <string>
#include <string_view>

#include "index/status.h"

namespace lazyroot {

struct Reference {
  enum class Transport { kRegistry, kOciLayout, kOciArchive, kDockerArchive };
  Transport transport = Transport::kRegistry;

  std::string registry;    // "docker.io", "ghcr.io", "127.0.0.1:5000" (host[:port], lower-case host,
                           // but see above for "Foo/bar")
  std::string repository;  // "library/alpine", "o/app"
  std::string tag;         // "latest" when neither tag nor digest was given; may be empty with a
                           // digest, and for kOciLayout when no reference name was given
  std::string digest;      // "sha256:<64 hex>" or empty
  std::string layout_dir;  // kOciLayout: the directory of the layout; the archives: the file
  // kDockerArchive: the normalised docker reference or "@N" after FILE; tag is empty.
  std::string archive_ref;
  // The user wrote "http://host/…": talk plain HTTP to this registry. A
  // "https://" or "docker://" prefix is accepted and stripped.
  bool plain_http = false;

  // "docker.io/library/alpine:latest", "host/repo@sha256:…", "host/repo:tag@sha256:…", "oci:DIR:tag".
  std::string ToString() const;
  // What to ask the registry for: the digest if present, else the tag.
  std::string ManifestSelector() const;
  // The registry host to contact: "registry-1.docker.io" for docker.io, else registry.
  std::string ApiHost() const;
};

// Parses text; errors are kInvalidArgument and quote the reference:
//   invalid reference "Alpine": repository name must be lowercase
Result<Reference> ParseReference(std::string_view text);

// Validates "sha256:<64 lower-case hex>" (the only algorithm we accept for
// content addressing); the message names what is wrong.
Status ValidateDigest(std::string_view digest);

}  // namespace lazyroot
