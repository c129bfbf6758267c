/* launch IMAGE DIR: what a VM launcher does with lazyroot, in C.
 *
 * Ensures IMAGE is in the store (pulled if missing), mounts it read-only at
 * DIR, prints the launch configuration as JSON (exactly what would go to
 * krun_set_root, krun_set_exec, krun_set_env, krun_set_workdir, and the ids
 * to run as), waits until standard input closes, unmounts and exits 0.
 *
 *   cc -o launch launch.c $(pkg-config --cflags --libs lazyroot)
 *
 * With libkrun (not in Debian 12; it needs KVM), build with -DHAVE_LIBKRUN
 * and -lkrun to start the VM instead of waiting. */
#include <lazyroot/lazyroot.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef HAVE_LIBKRUN
#include <libkrun.h>
#endif

static int fail(const char* what, lazyroot_error* err) {
  fprintf(stderr, "launch: %s: %s\n", what, lazyroot_error_message(err));
  lazyroot_error_free(err);
  return 1;
}

/* A JSON string (the values come from the image: escape them). */
static void json_string(const char* s) {
  putchar('"');
  for (; *s; ++s) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') printf("\\%c", c);
    else if (c < 0x20) printf("\\u%04x", c);
    else putchar(c);
  }
  putchar('"');
}

static void json_strings(const char* const* v) {
  putchar('[');
  for (int i = 0; v[i]; ++i) {
    if (i) putchar(',');
    json_string(v[i]);
  }
  putchar(']');
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: launch IMAGE DIR\n");
    return 2;
  }
  const char* image = argv[1];
  const char* dir = argv[2];
  lazyroot_error* err = NULL;
  lazyroot_store* store = NULL;
  if (lazyroot_store_open(NULL, &store, &err) != LAZYROOT_OK) return fail("open the store", err);
  if (lazyroot_ensure(store, image, NULL, NULL, &err) != LAZYROOT_OK) return fail("pull", err);

  lazyroot_launch* launch = NULL;
  if (lazyroot_launch_config(store, image, NULL, &launch, &err) != LAZYROOT_OK) return fail("launch config", err);
  lazyroot_mount_options options;
  lazyroot_mount_options_init(&options);
  options.krun_config = 1; /* /.krun_config.json for libkrun's init */
  lazyroot_mount* mount = NULL;
  if (lazyroot_mount_image(store, image, dir, &options, &mount, &err) != LAZYROOT_OK) return fail("mount", err);

  const uint32_t* gids = NULL;
  size_t ngids = lazyroot_launch_additional_gids(launch, &gids);
  printf("{\"root\":");
  json_string(lazyroot_mount_dir(mount)); /* krun_set_root(ctx, root) */
  printf(",\"exec\":");
  json_strings(lazyroot_launch_argv(launch)); /* krun_set_exec(ctx, argv[0], argv + 1, envp) */
  printf(",\"env\":");
  json_strings(lazyroot_launch_envp(launch));
  printf(",\"workdir\":");
  json_string(lazyroot_launch_cwd(launch)); /* krun_set_workdir(ctx, cwd) */
  printf(",\"uid\":%u,\"gid\":%u,\"additional_gids\":[", lazyroot_launch_uid(launch), lazyroot_launch_gid(launch));
  for (size_t i = 0; i < ngids; ++i) printf("%s%u", i ? "," : "", gids[i]);
  printf("]}\n");
  fflush(stdout);

#ifdef HAVE_LIBKRUN
  int ctx = krun_create_ctx();
  krun_set_root(ctx, lazyroot_mount_dir(mount));
  const char* const* args = lazyroot_launch_argv(launch);
  krun_set_exec(ctx, args[0], args + 1, lazyroot_launch_envp(launch));
  krun_set_workdir(ctx, lazyroot_launch_cwd(launch));
  /* libkrun runs the guest as root (libkrun#123): uid/gid above are for the
   * guest's init to switch to. krun_start_enter() does not return; the mount
   * lives on in its daemon, so `lazyroot umount DIR` afterwards. */
  lazyroot_mount_release(mount);
  return krun_start_enter(ctx);
#else
  /* No VM here: wait until standard input closes, then clean up. */
  char buf[256];
  while (read(0, buf, sizeof buf) > 0) {
  }
  lazyroot_launch_free(launch);
  if (lazyroot_unmount(mount, &err) != LAZYROOT_OK) return fail("unmount", err);
  lazyroot_store_close(store);
  return 0;
#endif
}
