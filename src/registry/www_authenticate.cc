#include "src/registry/www_authenticate.h"

#include <string>

#include "index/ascii.h"

namespace lazyroot {
namespace {

// RFC 7230 tchar.
bool IsTchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

// RFC 7235 token68 characters, without the trailing '=' padding.
bool IsToken68Char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~' || c == '+' || c == '/';
}

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

// A small recursive-descent parser over one header value:
//   header    = #challenge
//   challenge = scheme [ 1*SP ( token68 / #auth-param ) ]
//   auth-param = token BWS "=" BWS ( token / quoted-string )
// Lenient where registries are sloppy (regclient's vectors): a quoted scheme
// or key, unquoted values holding '/', ':' and the like.
class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  Result<std::vector<AuthChallenge>> Parse() {
    std::vector<AuthChallenge> out;
    while (true) {
      SkipSpaceAndCommas();
      if (AtEnd()) break;
      AuthChallenge c;
      LAZYROOT_ASSIGN_OR_RETURN(std::string scheme, ReadTokenOrQuoted("auth scheme"));
      c.scheme = AsciiLower(std::move(scheme));
      LAZYROOT_RETURN_IF_ERROR(ParseChallengeBody(&c));
      out.push_back(std::move(c));
    }
    return out;
  }

 private:
  bool AtEnd() const { return pos_ >= s_.size(); }
  char Peek() const { return s_[pos_]; }
  void SkipSpace() {
    while (!AtEnd() && IsSpace(Peek())) ++pos_;
  }
  void SkipSpaceAndCommas() {
    while (!AtEnd() && (IsSpace(Peek()) || Peek() == ',')) ++pos_;
  }

  Status Error(std::string_view what) const {
    return Status::InvalidArgument("malformed WWW-Authenticate header at offset " + std::to_string(pos_) + ": " +
                                   std::string(what));
  }

  // After the scheme: nothing, a token68, or a comma-separated list of
  // auth-params that ends where the next challenge's scheme begins.
  Status ParseChallengeBody(AuthChallenge* c) {
    SkipSpace();
    if (AtEnd() || Peek() == ',') return Status::Ok();
    if (TryToken68(c)) return Status::Ok();
    while (true) {
      LAZYROOT_RETURN_IF_ERROR(ParseParam(c));
      SkipSpace();
      if (AtEnd()) return Status::Ok();
      if (Peek() != ',') return Error("expected ',' after the value of \"" + last_key_ + "\"");
      SkipSpaceAndCommas();
      if (AtEnd()) return Status::Ok();
      if (!NextIsParam()) return Status::Ok();  // the next challenge's scheme
    }
  }

  // A token68 is only valid alone: scheme SP token68 [=…] then end or ','.
  bool TryToken68(AuthChallenge* c) {
    size_t p = pos_;
    while (p < s_.size() && IsToken68Char(s_[p])) ++p;
    if (p == pos_) return false;
    size_t end = p;
    while (p < s_.size() && s_[p] == '=') ++p;
    size_t after = p;
    while (p < s_.size() && IsSpace(s_[p])) ++p;
    if (p < s_.size() && s_[p] != ',') return false;
    // "key=" followed by the end is an empty-valued param, not a token68,
    // unless the token holds characters a key cannot.
    bool key_like = true;
    for (size_t i = pos_; i < end; ++i) key_like = key_like && IsTchar(s_[i]);
    if (after == end + 1 && key_like) return false;
    c->token68 = std::string(s_.substr(pos_, after - pos_));
    pos_ = p;
    return true;
  }

  // Looks ahead for `token BWS "="` without consuming.
  bool NextIsParam() const {
    size_t p = pos_;
    if (p < s_.size() && s_[p] == '"') {
      ++p;
      while (p < s_.size() && s_[p] != '"') p += (s_[p] == '\\') ? 2 : 1;
      ++p;
    } else {
      size_t start = p;
      while (p < s_.size() && IsTchar(s_[p])) ++p;
      if (p == start) return false;
    }
    while (p < s_.size() && IsSpace(s_[p])) ++p;
    return p < s_.size() && s_[p] == '=';
  }

  Status ParseParam(AuthChallenge* c) {
    LAZYROOT_ASSIGN_OR_RETURN(std::string key, ReadTokenOrQuoted("parameter name"));
    last_key_ = AsciiLower(std::move(key));
    SkipSpace();
    if (AtEnd() || Peek() != '=') return Error("expected '=' after \"" + last_key_ + "\"");
    ++pos_;
    SkipSpace();
    std::string value;
    if (!AtEnd() && Peek() == '"') {
      LAZYROOT_ASSIGN_OR_RETURN(value, ReadQuoted());
    } else {
      // Unquoted: up to ',' or whitespace; '\' escapes as in regclient.
      while (!AtEnd() && Peek() != ',' && !IsSpace(Peek())) {
        if (Peek() == '\\') {
          ++pos_;
          if (AtEnd()) return Error("dangling '\\' escape at the end");
        }
        value += Peek();
        ++pos_;
      }
    }
    c->params[last_key_] = std::move(value);
    return Status::Ok();
  }

  Result<std::string> ReadTokenOrQuoted(std::string_view what) {
    if (!AtEnd() && Peek() == '"') return ReadQuoted();
    size_t start = pos_;
    while (!AtEnd() && IsTchar(Peek())) ++pos_;
    if (pos_ == start) {
      return Error("expected " + std::string(what) +
                   (AtEnd() ? std::string(", got the end") : ", got '" + std::string(1, Peek()) + "'"));
    }
    return std::string(s_.substr(start, pos_ - start));
  }

  Result<std::string> ReadQuoted() {
    size_t open = pos_;
    ++pos_;  // opening quote
    std::string out;
    while (!AtEnd()) {
      char ch = Peek();
      ++pos_;
      if (ch == '"') return out;
      if (ch == '\\') {
        if (AtEnd()) return Error("dangling '\\' escape in the quoted string opened at offset " + std::to_string(open));
        ch = Peek();
        ++pos_;
      }
      out += ch;
    }
    return Error("unclosed quoted string opened at offset " + std::to_string(open));
  }

  std::string_view s_;
  size_t pos_ = 0;
  std::string last_key_;
};

}  // namespace

Result<std::vector<AuthChallenge>> ParseWwwAuthenticate(std::string_view header) { return Parser(header).Parse(); }

}  // namespace lazyroot
