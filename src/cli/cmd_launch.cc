// `lazyroot inspect --launch IMAGE [ARG...]`: what a VM launcher passes to
// krun_set_exec / krun_set_env / krun_set_workdir, from the image config and
// the image's own /etc/passwd and /etc/group (read from the layers, never
// extracted), with docker run's overrides.
// On the public API (lazyroot.hpp), as a launcher would get it.
#include <lazyroot/lazyroot.hpp>

#include <cstdio>
#include <cstdlib>

#include "src/cli/cli_common.h"

namespace lazyroot::cli {

void AddLaunchOptions(CLI::App* inspect, LaunchArgs* a) {
  auto* launch = inspect->add_flag(
      "--launch", a->launch,
      "Print the launch configuration as JSON: args (Entrypoint + Cmd), env (with docker's PATH and HOME "
      "defaults), cwd, the user resolved to uid, gid and additional_gids from the image's /etc/passwd and "
      "/etc/group as runc does, exposed_ports, volumes, stop_signal, labels");
  a->entrypoint_opt = inspect
                          ->add_option("--entrypoint", a->entrypoint,
                                       "With --launch: replace the image's Entrypoint (\"\" clears it) and drop its "
                                       "Cmd, as docker run does")
                          ->needs(launch);
  a->user_opt = inspect->add_option("--user", a->user, "With --launch: run as USER[:GROUP] instead of the image's User")
                    ->needs(launch);
  a->workdir_opt =
      inspect->add_option("--workdir", a->workdir, "With --launch: the working directory instead of WorkingDir")
          ->needs(launch);
  inspect
      ->add_option("-e,--env", a->env,
                   "With --launch: set KEY=VALUE in the environment (repeatable); KEY alone takes this process's "
                   "value, if set, as docker run -e does")
      ->needs(launch);
  a->args_opt =
      inspect->add_option("ARG", a->args, "With --launch: replaces the image's Cmd (put -- before it)")->needs(launch);
  AddLimitOption(inspect, &a->limits);
}

int RunInspectLaunch(const GlobalOptions& global, const std::string& image, const LaunchArgs& a) {
  auto limits = LimitItems(a.limits);
  if (!limits) return kExitUsage;
  lazyroot::LaunchOptions o;
  o.limits = *limits;
  if (a.entrypoint_opt->count() > 0) o.entrypoint = a.entrypoint;
  if (a.user_opt->count() > 0) o.user = a.user;
  if (a.workdir_opt->count() > 0) o.workdir = a.workdir;
  if (a.args_opt->count() > 0) o.cmd = a.args;
  for (const std::string& kv : a.env) {
    if (kv.find('=') != std::string::npos) {
      o.env.push_back(kv);
    } else if (const char* v = std::getenv(kv.c_str())) {  // docker run -e KEY: this process's value, if set
      o.env.push_back(kv + "=" + v);
    }
  }
  try {
    lazyroot::Store store(global.root);
    std::printf("%s\n", store.LaunchConfig(image, o).json.c_str());
  } catch (const lazyroot::Error& e) {
    return Fail(e);
  }
  return kExitOk;
}

}  // namespace lazyroot::cli
