/* PID 1 of the VM test's initramfs (tests/integration/test_vm_boot.py),
 * built static by the test. It loads the kernel modules listed in
 * /modules.list (virtio-pci and 9p, in dependency order), mounts the
 * lazyroot mount the host exported over virtio-9p at /newroot, and runs the
 * workload the way a launcher does with the launch configuration of
 * `lazyroot inspect --launch`, read from /launch.conf: chroot into the
 * image, setgroups/setgid/setuid, chdir to cwd, exec args with env (args[0]
 * looked up in the env's PATH, as execvpe does). It then prints the
 * workload's exit status and powers the VM off. No libc beyond syscalls
 * and stdio; no busybox needed in the initramfs (the image brings its own).
 *
 * /launch.conf: one item per line, "uid N", "gid N", "group N" (each
 * additional gid), "cwd PATH", "env KEY=VALUE", "arg WORD". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_ITEMS 256

static void die(const char *what) {
  fprintf(stderr, "vm_init: %s: %s\n", what, strerror(errno));
  fflush(stderr);
  sync();
  reboot(RB_POWER_OFF);
  _exit(1);
}

static void load_modules(void) {
  FILE *f = fopen("/modules.list", "r");
  if (!f) die("/modules.list");
  char line[512];
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    if (!line[0]) continue;
    int fd = open(line, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die(line);
    if (syscall(SYS_finit_module, fd, "", 0) != 0 && errno != EEXIST) die(line);
    close(fd);
  }
  fclose(f);
}

int main(void) {
  static char *args[MAX_ITEMS + 1], *env[MAX_ITEMS + 1];
  static gid_t groups[MAX_ITEMS];
  int nargs = 0, nenv = 0, ngroups = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  char cwd[4096] = "/";

  mkdir("/proc", 0755);
  mount("proc", "/proc", "proc", 0, NULL);
  mkdir("/dev", 0755);
  mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
  load_modules();

  FILE *f = fopen("/launch.conf", "r");
  if (!f) die("/launch.conf");
  static char line[8192];
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    char *v = strchr(line, ' ');
    if (!v) continue;
    *v++ = 0;
    if (!strcmp(line, "uid")) uid = (uid_t)strtoul(v, NULL, 10);
    else if (!strcmp(line, "gid")) gid = (gid_t)strtoul(v, NULL, 10);
    else if (!strcmp(line, "group") && ngroups < MAX_ITEMS) groups[ngroups++] = (gid_t)strtoul(v, NULL, 10);
    else if (!strcmp(line, "cwd")) snprintf(cwd, sizeof cwd, "%s", v);
    else if (!strcmp(line, "env") && nenv < MAX_ITEMS) env[nenv++] = strdup(v);
    else if (!strcmp(line, "arg") && nargs < MAX_ITEMS) args[nargs++] = strdup(v);
  }
  fclose(f);
  if (nargs == 0) die("launch.conf has no arg");

  mkdir("/newroot", 0755);
  if (mount("lzroot", "/newroot", "9p", MS_RDONLY, "trans=virtio,version=9p2000.L,cache=loose") != 0)
    die("mount 9p lzroot");
  printf("vm_init: root mounted, starting the workload\n");
  fflush(stdout);

  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    if (chroot("/newroot") != 0 || chdir("/") != 0) die("chroot");
    if (setgroups((size_t)ngroups, groups) != 0) die("setgroups");
    if (setgid(gid) != 0) die("setgid");
    if (setuid(uid) != 0) die("setuid");
    if (chdir(cwd) != 0) die(cwd);
    /* execvpe looks args[0] up in the PATH of the *current* environment. */
    environ = env;
    execvpe(args[0], args, env);
    fprintf(stderr, "vm_init: exec %s: %s\n", args[0], strerror(errno));
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  printf("vm_init: workload exited %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  fflush(stdout);
  sync();
  reboot(RB_POWER_OFF);
  return 0;
}
