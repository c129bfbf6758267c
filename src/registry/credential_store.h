// Writing credentials where `podman login` and `docker login` keep them, for
// `lazyroot login` / `logout`. The destination: the auth file the user named
// (--authfile, else $REGISTRY_AUTH_FILE), or else the primary containers
// auth file (PrimaryAuthFile); a credHelpers entry for the registry in that
// file - or, when the user named no file, in docker's config.json, then its
// credsStore - sends them to that docker-credential helper instead (`store`
// with {ServerURL, Username, Secret} on stdin, `erase` with the server URL).
// An auth file is rewritten whole and atomically (temp file in its
// directory, fsync, rename), mode 0600, its directory created 0700 when
// missing; every other entry and top-level key is kept. Secrets never
// appear in messages. Thread-compatible.
#pragma once

#include <string>

#include "index/status.h"
#include "src/registry/credentials.h"

namespace lazyroot {

struct CredentialDestination {
  std::string helper;     // non-empty: docker-credential-<helper>
  std::string auth_file;  // otherwise: this containers auth.json
  // "docker-credential-pass" or "/run/user/1000/containers/auth.json".
  std::string Describe() const;
};

// Where login for key stores its credential. key is a registry host
// ("127.0.0.1:5000", "docker.io") or, for an auth file, a namespace in one
// ("quay.io/team"); helpers are looked up for its host. Errors:
// kInvalidArgument naming a malformed auth file, or an $XDG_RUNTIME_DIR
// that does not exist (podman's rule).
Result<CredentialDestination> LoginDestination(const std::string& key, const CredentialOptions& options);

// Stores username/secret for key. kUnauthorized naming the helper when it
// fails; errno errors naming the file.
Status StoreCredential(const CredentialDestination& dest, const std::string& key, const std::string& username,
                       const std::string& secret, const CredentialOptions& options);

// Removes what is stored for key (in a file: that key, and for a host the
// URL-style keys that name it, "https://host/v1/"). false when nothing was
// stored there; the file is then left untouched.
Result<bool> EraseCredential(const CredentialDestination& dest, const std::string& key,
                             const CredentialOptions& options);

// `logout --all`: empties "auths" of auth_file (other keys kept). Returns how
// many entries went; 0 and no write when there were none or no file.
Result<size_t> EraseAllCredentials(const std::string& auth_file);

// The host of a login key: "quay.io/team" -> "quay.io".
std::string LoginKeyHost(const std::string& key);

}  // namespace lazyroot
