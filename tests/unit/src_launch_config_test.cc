// User resolution as runc's GetExecUser does it, and docker's Entrypoint /
// Cmd / Env / WorkingDir rules; expected values worked out from runc
// (libcontainer/user/user.go) and moby (daemon/commit.go merge,
// oci defaults), not from our own output.
#include <gtest/gtest.h>

#include "src/launch/launch_config.h"
#include "src/launch/user_lookup.h"

namespace lazyroot {
namespace {

const std::string kPasswd =
    "root:x:0:0:root:/root:/bin/bash\n"
    "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
    "  \n"
    "app:x:1000:1001:App,,,:/home/app:/bin/sh\n"
    "garbled:x:notanumber:5:x:/home/g:/bin/sh\n"
    "nohome:x:1002:1002\n"
    "dup:x:1003:1003::/first:/bin/sh\n"
    "dup:x:1004:1004::/second:/bin/sh\n";
const std::string kGroup =
    "root:x:0:\n"
    "daemon:x:1:app\n"
    "app:x:1001:\n"
    "audio:x:29:app,other\n"
    "video:x:44:other,app\n"
    "staff:x:50:\n"
    "bad:x:zz:app\n";

ExecUser Resolve(std::string_view spec, bool files = true) {
  auto r = ResolveExecUser(spec, files ? std::optional<std::string>(kPasswd) : std::nullopt,
                           files ? std::optional<std::string>(kGroup) : std::nullopt);
  EXPECT_TRUE(r.ok()) << spec << ": " << r.status().ToString();
  return r.ok() ? *r : ExecUser{};
}

TEST(UserLookup, EmptyIsRootWithRootsHome) {
  ExecUser u = Resolve("");
  EXPECT_EQ(u.uid, 0u);
  EXPECT_EQ(u.gid, 0u);
  EXPECT_EQ(u.home, "/root");
  EXPECT_TRUE(u.additional_gids.empty());
}

TEST(UserLookup, NameGivesPrimaryGroupHomeAndMemberships) {
  ExecUser u = Resolve("app");
  EXPECT_EQ(u.uid, 1000u);
  EXPECT_EQ(u.gid, 1001u);
  EXPECT_EQ(u.home, "/home/app");
  // Every group listing "app", in file order; "bad" has an unparsable gid.
  EXPECT_EQ(u.additional_gids, (std::vector<uint32_t>{1, 29, 44}));
}

TEST(UserLookup, NumericUidMatchesByUidOnly) {
  ExecUser u = Resolve("1000");
  EXPECT_EQ(u.uid, 1000u);
  EXPECT_EQ(u.gid, 1001u);
  EXPECT_EQ(u.home, "/home/app");
  EXPECT_EQ(u.additional_gids.size(), 3u);
}

TEST(UserLookup, NumericUidAbsentFromPasswdIsUsedWithGidZero) {
  ExecUser u = Resolve("4242");
  EXPECT_EQ(u.uid, 4242u);
  EXPECT_EQ(u.gid, 0u);
  EXPECT_EQ(u.home, "/");
  EXPECT_TRUE(u.additional_gids.empty());
}

TEST(UserLookup, ExplicitGroupByNameOrIdDropsSupplementaryGroups) {
  ExecUser u = Resolve("app:staff");
  EXPECT_EQ(u.uid, 1000u);
  EXPECT_EQ(u.gid, 50u);
  EXPECT_TRUE(u.additional_gids.empty());
  u = Resolve("1000:44");
  EXPECT_EQ(u.gid, 44u);
  u = Resolve("4242:777");  // both absent, both numeric
  EXPECT_EQ(u.uid, 4242u);
  EXPECT_EQ(u.gid, 777u);
}

TEST(UserLookup, FirstMatchWinsAndShortLinesWork) {
  EXPECT_EQ(Resolve("dup").home, "/first");
  ExecUser u = Resolve("nohome");
  EXPECT_EQ(u.uid, 1002u);
  EXPECT_EQ(u.home, "/");
}

TEST(UserLookup, MissingNamesAreErrorsNamingThem) {
  auto r = ResolveExecUser("nobody", kPasswd, kGroup);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(r.status().message().find("unable to find user nobody"), std::string::npos);
  r = ResolveExecUser("app:wheel", kPasswd, kGroup);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("unable to find group wheel"), std::string::npos);
  // A garbled line does not make a user (runc would read its uid as 0).
  r = ResolveExecUser("garbled", kPasswd, kGroup);
  EXPECT_FALSE(r.ok());
  // No passwd file: names cannot resolve, numbers can.
  r = ResolveExecUser("app", std::nullopt, std::nullopt);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("has no /etc/passwd"), std::string::npos);
  EXPECT_EQ(Resolve("12:34", false).gid, 34u);
  r = ResolveExecUser("99999999999", kPasswd, kGroup);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
}

// The spec is split as runc's parseLine does: fields after the second ':'
// are ignored, and numbers are read as Go's strconv.Atoi reads them.
TEST(UserLookup, SpecFieldsAndNumbersAsRuncReadsThem) {
  ExecUser u = Resolve("1000:44:junk");
  EXPECT_EQ(u.uid, 1000u);
  EXPECT_EQ(u.gid, 44u);
  u = Resolve("::");  // user "", group "": root as with ""
  EXPECT_EQ(u.uid, 0u);
  EXPECT_EQ(u.gid, 0u);
  u = Resolve("+1000:+44");
  EXPECT_EQ(u.uid, 1000u);
  EXPECT_EQ(u.gid, 44u);
  EXPECT_EQ(Resolve("-0").uid, 0u);
  for (const char* bad : {"-1", "+", "1000:-5", "++1"}) {
    auto r = ResolveExecUser(bad, kPasswd, kGroup);
    EXPECT_FALSE(r.ok()) << bad;
  }
}

ImageConfig Config() {
  ImageConfig c;
  c.entrypoint = {"/entry", "-x"};
  c.cmd = {"serve", "--port=80"};
  c.env = {"LANG=C.UTF-8", "FOO=bar"};
  c.user = "app";
  c.working_dir = "/srv/app";
  return c;
}

Result<LaunchConfig> Make(const ImageConfig& c, const LaunchOverrides& o = {}) {
  return MakeLaunchConfig(c, o, UserFiles{kPasswd, kGroup});
}

TEST(LaunchConfig, EntrypointPlusCmdEnvDefaultsAndUser) {
  auto lc = Make(Config());
  ASSERT_TRUE(lc.ok()) << lc.status().ToString();
  EXPECT_EQ(lc->args, (std::vector<std::string>{"/entry", "-x", "serve", "--port=80"}));
  EXPECT_EQ(lc->env, (std::vector<std::string>{"LANG=C.UTF-8", "FOO=bar", std::string("PATH=") + kDefaultPath,
                                               "HOME=/home/app"}));
  EXPECT_EQ(lc->cwd, "/srv/app");
  EXPECT_EQ(lc->exec_user.uid, 1000u);
}

// An image Env entry without '=' is docker's "unset": it is not passed on
// (runc refuses a process env entry without '=', so a bundle holding one
// would not run), and "PATH" alone drops the default PATH as in docker.
TEST(LaunchConfig, EnvEntriesWithoutEqualsUnsetAndAreDropped) {
  ImageConfig c = Config();
  c.env = {"NOEQUALS", "A=1", "HOME", "B=x=y"};
  auto lc = Make(c);
  ASSERT_TRUE(lc.ok()) << lc.status().ToString();
  EXPECT_EQ(lc->env, (std::vector<std::string>{"A=1", "B=x=y", std::string("PATH=") + kDefaultPath,
                                               "HOME=/home/app"}));
  c.env = {"PATH", "A=1"};
  lc = Make(c);
  ASSERT_TRUE(lc.ok()) << lc.status().ToString();
  EXPECT_EQ(lc->env, (std::vector<std::string>{"A=1", "HOME=/home/app"}));
}

TEST(LaunchConfig, DockerRunOverrides) {
  LaunchOverrides o;
  o.cmd = std::vector<std::string>{"sh"};
  auto lc = Make(Config(), o);
  ASSERT_TRUE(lc.ok());
  EXPECT_EQ(lc->args, (std::vector<std::string>{"/entry", "-x", "sh"}));
  // --entrypoint drops the image's Cmd.
  o = {};
  o.entrypoint = "/bin/true";
  lc = Make(Config(), o);
  ASSERT_TRUE(lc.ok());
  EXPECT_EQ(lc->args, (std::vector<std::string>{"/bin/true"}));
  // --entrypoint "" clears it; the trailing args are the command.
  o.entrypoint = "";
  o.cmd = std::vector<std::string>{"ls", "-l"};
  lc = Make(Config(), o);
  ASSERT_TRUE(lc.ok());
  EXPECT_EQ(lc->args, (std::vector<std::string>{"ls", "-l"}));
  // User, workdir and env overrides; an image PATH and HOME are kept.
  o = {};
  o.user = "4242:7";
  o.workdir = "rel/../dir";
  o.env = {"FOO=baz", "NEW=1"};
  ImageConfig c = Config();
  c.env.push_back("PATH=/opt/bin");
  lc = Make(c, o);
  ASSERT_TRUE(lc.ok());
  EXPECT_EQ(lc->exec_user.uid, 4242u);
  EXPECT_EQ(lc->exec_user.gid, 7u);
  EXPECT_EQ(lc->cwd, "/dir");
  EXPECT_EQ(lc->env, (std::vector<std::string>{"LANG=C.UTF-8", "FOO=baz", "PATH=/opt/bin", "NEW=1", "HOME=/"}));
  o.env = {"LANG"};
  EXPECT_FALSE(Make(c, o).ok());
}

TEST(LaunchConfig, NoCommandAndUnknownUserAreErrors) {
  ImageConfig c = Config();
  c.entrypoint.clear();
  c.cmd.clear();
  auto lc = Make(c);
  ASSERT_FALSE(lc.ok());
  EXPECT_NE(lc.status().message().find("neither Entrypoint nor Cmd"), std::string::npos);
  c = Config();
  c.user = "ghost";
  lc = Make(c);
  ASSERT_FALSE(lc.ok());
  EXPECT_NE(lc.status().message().find("ghost"), std::string::npos);
  c = Config();
  c.working_dir.clear();
  lc = Make(c);
  ASSERT_TRUE(lc.ok());
  EXPECT_EQ(lc->cwd, "/");
}

}  // namespace
}  // namespace lazyroot
