#include "src/registry/credential_store.h"

#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>

#include "index/ascii.h"
#include "src/common/file_io.h"
#include "src/registry/registry_auth.h"

namespace lazyroot {
namespace {

// Creates dir and its missing parents, owner-only (podman's 0700): the
// directory of a file holding secrets.
Status MakePrivateDirs(const std::string& dir) {
  if (dir.empty()) return Status::Ok();
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    return S_ISDIR(st.st_mode) ? Status::Ok() : Status::InvalidArgument(dir + ": not a directory");
  }
  size_t slash = dir.rfind('/');
  if (slash != std::string::npos && slash > 0) LAZYROOT_RETURN_IF_ERROR(MakePrivateDirs(dir.substr(0, slash)));
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return Status::FromErrno("create directory " + dir, errno);
  return Status::Ok();
}

std::string DirOf(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return "";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// The auth file as a document to edit: an empty object when it does not exist.
Result<JsonDocument> LoadForEdit(const std::string& path) {
  LAZYROOT_ASSIGN_OR_RETURN(std::optional<JsonDocument> doc, ReadAuthFile(path));
  if (doc) {
    if (auto it = doc->FindMember("auths"); it != doc->MemberEnd() && !it->value.IsObject() && !it->value.IsNull()) {
      return Status::InvalidArgument(path + ": auths: want an object");
    }
    return std::move(*doc);
  }
  JsonDocument fresh;
  fresh.SetObject();
  return fresh;
}

Status SaveAuthFile(const std::string& path, const JsonDocument& doc) {
  rapidjson::StringBuffer sb;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(sb);
  w.SetIndent('\t', 1);  // as podman writes it
  doc.Accept(w);
  std::string text(sb.GetString(), sb.GetSize());
  text += '\n';
  LAZYROOT_RETURN_IF_ERROR(MakePrivateDirs(DirOf(path)));
  return WriteFileAtomic(path, text, 0600);
}

// The keys of auths that stand for key: itself, and for a bare host the
// URL-style keys docker writes for it ("https://host/v1/").
bool NamesKey(std::string_view candidate, const std::string& key) {
  if (candidate == key) return true;
  if (key.find('/') != std::string::npos || candidate.find("://") == std::string_view::npos) return false;
  return NormalizeAuthKey(candidate) == AsciiLower(key);
}

Status HelperStore(const std::string& helper, const std::string& key, const std::string& username,
                   const std::string& secret, const CredentialOptions& options) {
  LAZYROOT_ASSIGN_OR_RETURN(int timeout_ms, CredentialHelperTimeoutMs(options));
  const std::string host = LoginKeyHost(key);
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  auto str = [&](const std::string& s) { w.String(s.data(), static_cast<rapidjson::SizeType>(s.size())); };
  w.StartObject();
  w.Key("ServerURL");
  str(CredentialHelperServerUrl(host));
  w.Key("Username");
  str(username);
  w.Key("Secret");
  str(secret);
  w.EndObject();
  LAZYROOT_ASSIGN_OR_RETURN(
      CredentialHelperRun run,
      RunCredentialHelper(helper, "store", std::string(sb.GetString(), sb.GetSize()), host, timeout_ms));
  if (run.exit_status != 0) {
    return Status::Unauthorized("credential helper docker-credential-" + helper + " for registry " + host +
                                ": store failed (exit status " + std::to_string(run.exit_status) + ")");
  }
  return Status::Ok();
}

Result<bool> HelperErase(const std::string& helper, const std::string& key, const CredentialOptions& options) {
  LAZYROOT_ASSIGN_OR_RETURN(int timeout_ms, CredentialHelperTimeoutMs(options));
  const std::string host = LoginKeyHost(key);
  LAZYROOT_ASSIGN_OR_RETURN(
      CredentialHelperRun run,
      RunCredentialHelper(helper, "erase", CredentialHelperServerUrl(host) + "\n", host, timeout_ms));
  if (run.exit_status == 0) return true;
  if (run.output.find("credentials not found") != std::string::npos) return false;
  return Status::Unauthorized("credential helper docker-credential-" + helper + " for registry " + host +
                              ": erase failed (exit status " + std::to_string(run.exit_status) + ")");
}

}  // namespace

std::string LoginKeyHost(const std::string& key) { return key.substr(0, key.find('/')); }

std::string CredentialDestination::Describe() const {
  return helper.empty() ? auth_file : "docker-credential-" + helper;
}

Result<CredentialDestination> LoginDestination(const std::string& key, const CredentialOptions& options) {
  const std::string host = LoginKeyHost(key);
  CredentialDestination dest;
  std::string named = options.authfile;
  if (named.empty()) {
    if (const char* f = std::getenv("REGISTRY_AUTH_FILE"); f != nullptr) named = f;
  }
  if (!named.empty()) {
    dest.auth_file = named;
  } else {
    // podman refuses a $XDG_RUNTIME_DIR that does not exist rather than
    // writing somewhere the next login session will not look.
    if (const char* run = std::getenv("XDG_RUNTIME_DIR"); run != nullptr && *run != '\0') {
      struct stat st {};
      if (::stat(run, &st) != 0) {
        return Status::InvalidArgument("$XDG_RUNTIME_DIR " + std::string(run) +
                                       " does not exist: create it or unset XDG_RUNTIME_DIR");
      }
    }
    dest.auth_file = PrimaryAuthFile();
  }
  LAZYROOT_ASSIGN_OR_RETURN(std::optional<std::string> helper, AuthFileHelperFor(dest.auth_file, host, false));
  if (!helper && named.empty()) {
    // docker's own choice for this registry (credHelpers, then credsStore),
    // so that `docker pull` finds the login too.
    if (std::string config = DockerConfigPath(options); !config.empty()) {
      LAZYROOT_ASSIGN_OR_RETURN(helper, AuthFileHelperFor(config, host, true));
    }
  }
  if (helper) {
    if (helper->empty() || helper->find_first_of(std::string_view("/\0", 2)) != std::string::npos) {
      return Status::Unauthorized("invalid credential helper name \"" + *helper + "\" for registry " + host);
    }
    // A helper keeps one login per server URL: a namespace would be lost
    // (containers/image refuses it likewise).
    if (key.find('/') != std::string::npos) {
      return Status::InvalidArgument("credential helper docker-credential-" + *helper +
                                     " keeps one login per registry: log in to " + host +
                                     ", or name an auth file (--authfile) for a login to " + key + " alone");
    }
    dest.helper = *helper;
  }
  return dest;
}

Status StoreCredential(const CredentialDestination& dest, const std::string& key, const std::string& username,
                       const std::string& secret, const CredentialOptions& options) {
  if (!dest.helper.empty()) return HelperStore(dest.helper, key, username, secret, options);
  LAZYROOT_ASSIGN_OR_RETURN(JsonDocument doc, LoadForEdit(dest.auth_file));
  auto& alloc = doc.GetAllocator();
  auto it = doc.FindMember("auths");
  if (it == doc.MemberEnd()) {
    doc.AddMember("auths", JsonValue(rapidjson::kObjectType), alloc);
    it = doc.FindMember("auths");
  } else if (it->value.IsNull()) {
    it->value.SetObject();
  }
  JsonValue& auths = it->value;
  const std::string auth = Base64Encode(username + ":" + secret);
  JsonValue entry(rapidjson::kObjectType);
  entry.AddMember("auth", JsonValue(auth.c_str(), static_cast<rapidjson::SizeType>(auth.size()), alloc), alloc);
  if (auto m = auths.FindMember(key.c_str()); m != auths.MemberEnd()) {
    m->value = entry;  // replaces the whole entry, identitytoken and all, as podman does
  } else {
    auths.AddMember(JsonValue(key.c_str(), static_cast<rapidjson::SizeType>(key.size()), alloc), entry, alloc);
  }
  return SaveAuthFile(dest.auth_file, doc);
}

Result<bool> EraseCredential(const CredentialDestination& dest, const std::string& key,
                             const CredentialOptions& options) {
  if (!dest.helper.empty()) return HelperErase(dest.helper, key, options);
  LAZYROOT_ASSIGN_OR_RETURN(std::optional<JsonDocument> doc, ReadAuthFile(dest.auth_file));
  if (!doc) return false;
  auto it = doc->FindMember("auths");
  if (it == doc->MemberEnd() || it->value.IsNull()) return false;
  if (!it->value.IsObject()) return Status::InvalidArgument(dest.auth_file + ": auths: want an object");
  JsonValue& auths = it->value;
  bool removed = false;
  for (auto m = auths.MemberBegin(); m != auths.MemberEnd();) {
    if (NamesKey(std::string_view(m->name.GetString(), m->name.GetStringLength()), key)) {
      m = auths.EraseMember(m);
      removed = true;
    } else {
      ++m;
    }
  }
  if (!removed) return false;
  LAZYROOT_RETURN_IF_ERROR(SaveAuthFile(dest.auth_file, *doc));
  return true;
}

Result<size_t> EraseAllCredentials(const std::string& auth_file) {
  LAZYROOT_ASSIGN_OR_RETURN(std::optional<JsonDocument> doc, ReadAuthFile(auth_file));
  if (!doc) return size_t{0};
  auto it = doc->FindMember("auths");
  if (it == doc->MemberEnd() || it->value.IsNull()) return size_t{0};
  if (!it->value.IsObject()) return Status::InvalidArgument(auth_file + ": auths: want an object");
  size_t n = it->value.MemberCount();
  if (n == 0) return size_t{0};
  it->value.RemoveAllMembers();
  LAZYROOT_RETURN_IF_ERROR(SaveAuthFile(auth_file, *doc));
  return n;
}

}  // namespace lazyroot
