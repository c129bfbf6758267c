// Credentials for a registry, found where podman/skopeo and docker keep
// them, in containers-auth.json(5)'s order: explicit flags; then the auth
// file given (--authfile, else $REGISTRY_AUTH_FILE) and nothing else; or
// $XDG_RUNTIME_DIR/containers/auth.json (/run/containers/UID/auth.json
// without it), then
// $XDG_CONFIG_HOME/containers/auth.json (~/.config/...), then docker's
// $DOCKER_CONFIG/config.json or ~/.docker/config.json. In a containers auth
// file: credHelpers[host], then auths with namespaced keys, most specific
// first ("reg/team/app", "reg/team", "reg"); a file without an entry passes
// to the next. In docker's config.json, docker/cli's rules:
// credHelpers[host] -> credsStore -> auths[host] (URL-style keys
// normalised; Docker Hub's key is https://index.docker.io/v1/), and the
// first that applies decides. Helpers run as `docker-credential-NAME get`
// (server URL on stdin, JSON out) and are stopped after a timeout. A failing
// helper is an error, never a fall-back (CVE-2021-41092). Secrets never
// appear in error messages. Thread-compatible.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "index/status.h"
#include "src/image/json_document.h"

namespace lazyroot {

struct Credential {
  std::string username;
  std::string secret;           // password, or an identity token when identity_token is true
  bool identity_token = false;  // helper returned Username "<token>" / config had identitytoken
  std::string registry_token;   // config.json "registrytoken": used directly as the bearer
};

struct CredentialOptions {
  std::optional<Credential> explicit_credential;  // --creds / --username + --password-stdin
  std::string docker_config_dir;                  // "" = $DOCKER_CONFIG, else $HOME/.docker
  std::string authfile;                           // --authfile; "" = $REGISTRY_AUTH_FILE, else the XDG runtime file
  std::string repository;                         // "team/app": for namespaced auth.json keys; "" = host keys only
  // A helper that has not answered by then is killed: the error names it.
  // 0 = $LAZYROOT_CREDENTIAL_HELPER_TIMEOUT seconds, else 30 s.
  int helper_timeout_ms = 0;
};

// The containers auth files searched, in order (existing or not): the file
// the user named (--authfile, else $REGISTRY_AUTH_FILE) alone - then
// docker's config.json is not read either, as in podman and skopeo - else
// the primary file (PrimaryAuthFile), then the XDG config one.
std::vector<std::string> ContainersAuthFiles(const CredentialOptions& options);

// Looks up credentials for registry host (e.g. "docker.io", "127.0.0.1:5000";
// "registry-1.docker.io" and "index.docker.io" also mean Docker Hub) and
// options.repository, through the files above in order. Within docker's
// config.json the first source that applies decides, as in docker/cli: a
// helper's "not found" is anonymous, auths is not consulted after it. For Docker Hub the
// auths / credHelpers keys https://index.docker.io/v1/, index.docker.io,
// docker.io and registry-1.docker.io all match (in that preference).
// Helpers get the registry host on stdin (Docker Hub: https://index.docker.io/v1/),
// their stderr goes to /dev/null, stdout is capped at 1 MiB; one that has
// not finished within the timeout is killed (kUnauthorized naming it). Each
// file is capped at 16 MiB; both are JSON read with the
// limits of src/image/json_document.h (64 levels, 1,048,576 values). Username "<token>" => identity_token with an empty
// username. An auths entry with only empty fields ("{}" beside a credsStore) is nullopt. Returns nullopt for anonymous
// access (no config file, no entry, or helper says "credentials not found"); kInvalidArgument naming the file for a
// malformed auth file; kUnauthorized naming the helper and registry for a
// helper that is missing from PATH, fails, dies or prints malformed JSON.
Result<std::optional<Credential>> LookupCredential(const std::string& registry, const CredentialOptions& options);

// Reads an auth file (containers auth.json or docker config.json): nullopt
// when it does not exist; kInvalidArgument naming it when larger than
// 16 MiB, not JSON within json_document.h's limits, or not an object.
Result<std::optional<JsonDocument>> ReadAuthFile(const std::string& path);

// The primary (read/write) containers auth file, as podman login writes it
// (containers/image getPathToAuth): $XDG_RUNTIME_DIR/containers/auth.json,
// else /run/containers/UID/auth.json.
std::string PrimaryAuthFile();

// docker's config.json: $DOCKER_CONFIG/config.json (or options'), else
// ~/.docker/config.json; "" without a HOME.
std::string DockerConfigPath(const CredentialOptions& options);

// The credential helper an auth file names for registry: credHelpers[host],
// and for docker's config.json (docker_config) then credsStore. nullopt when
// the file does not exist or names none; kInvalidArgument naming the file
// when it is malformed.
Result<std::optional<std::string>> AuthFileHelperFor(const std::string& path, const std::string& registry,
                                                     bool docker_config);

// The helper timeout in ms: options', else $LAZYROOT_CREDENTIAL_HELPER_TIMEOUT
// seconds, else 30 s. kInvalidArgument for a malformed variable.
Result<int> CredentialHelperTimeoutMs(const CredentialOptions& options);

// What docker hands a helper as the server URL: the registry host, and
// https://index.docker.io/v1/ for Docker Hub.
std::string CredentialHelperServerUrl(const std::string& registry);

// One run of `docker-credential-<helper> <action>` (get, store, erase) with
// input (at most 16 KiB) on stdin: its exit status and stdout (capped at
// 1 MiB; stderr goes to /dev/null). Killed after timeout_ms. kUnauthorized
// naming the helper and registry when it is not on PATH, cannot run, is
// killed, times out or prints too much; never quotes its output.
struct CredentialHelperRun {
  int exit_status = 0;
  std::string output;
};
Result<CredentialHelperRun> RunCredentialHelper(const std::string& helper, const std::string& action,
                                                const std::string& input, const std::string& registry,
                                                int timeout_ms);

// "https://index.docker.io/v1/" -> "index.docker.io"; "http://h:5000/v2" -> "h:5000";
// "h:5000" -> "h:5000". Used to match config.json auths keys.
std::string NormalizeAuthKey(std::string_view key);

}  // namespace lazyroot
