// Credentials for a registry host, found the way docker and crane find them:
// explicit flags first, then $DOCKER_CONFIG/config.json or
// ~/.docker/config.json: credHelpers[host] -> credsStore -> auths[host]
// (URL-style keys normalised; Docker Hub's key is https://index.docker.io/v1/).
// Helpers run as `docker-credential-NAME get` (server URL on stdin, JSON out).
// A failing helper is an error, never a fall-back (CVE-2021-41092).
// Secrets never appear in error messages. Thread-compatible.
#pragma once

#include <optional>
#include <string>

#include "index/status.h"

namespace lazyroot {

struct Credential {
  std::string username;
  std::string secret;        // password, or an identity token when identity_token is true
  bool identity_token = false;  // helper returned Username "<token>" / config had identitytoken
  std::string registry_token;   // config.json "registrytoken": used directly as the bearer
};

struct CredentialOptions {
  std::optional<Credential> explicit_credential;  // --creds / --username + --password-stdin
  std::string docker_config_dir;  // "" = $DOCKER_CONFIG, else $HOME/.docker
};

// Looks up credentials for registry host (e.g. "docker.io", "127.0.0.1:5000";
// "registry-1.docker.io" and "index.docker.io" also mean Docker Hub).
// The first source that applies decides, as in docker/cli: a helper's "not
// found" is anonymous, auths is not consulted after it. For Docker Hub the
// auths / credHelpers keys https://index.docker.io/v1/, index.docker.io,
// docker.io and registry-1.docker.io all match (in that preference).
// Helpers get the registry host on stdin (Docker Hub: https://index.docker.io/v1/),
// their stderr goes to /dev/null, stdout is capped at 1 MiB; there is no
// timeout. config.json is capped at 16 MiB; both are JSON read with the
// limits of src/json_document.h (64 levels, 1,048,576 values). Username "<token>" => identity_token with an empty username.
// An auths entry with only empty fields ("{}" beside a credsStore) is nullopt.
// Returns nullopt for anonymous access (no config file, no entry, or helper
// says "credentials not found"); kInvalidArgument naming the file for a
// malformed config.json; kUnauthorized naming the helper and registry for a
// helper that is missing from PATH, fails, dies or prints malformed JSON.
Result<std::optional<Credential>> LookupCredential(const std::string& registry, const CredentialOptions& options);

// "https://index.docker.io/v1/" -> "index.docker.io"; "http://h:5000/v2" -> "h:5000";
// "h:5000" -> "h:5000". Used to match config.json auths keys.
std::string NormalizeAuthKey(std::string_view key);

}  // namespace lazyroot
