/* lazyroot: OCI/Docker images as root filesystems for micro-VMs and
 * sandboxes, as a C library. Pull an image into a verified,
 * content-addressed store, get the launch configuration a VM launcher hands
 * to krun_set_exec / krun_set_env / krun_set_workdir, and mount the image
 * read-only (FUSE, served lazily from the compressed layers) or extract it.
 *
 * Conventions
 * - Every function that can fail returns a lazyroot_status (LAZYROOT_OK = 0)
 *   and, when `err` is not NULL, stores a lazyroot_error the caller frees
 *   with lazyroot_error_free(). Messages name the object at fault, as the
 *   lazyroot command does ("pull 127.0.0.1:5000/app:v1: layer sha256:…:
 *   digest mismatch"). No C++ exception crosses this interface.
 * - Strings returned through `char**` are the caller's: lazyroot_free().
 * - No global state: handles are independent. One handle is used by one
 *   thread at a time unless a function says otherwise; different handles
 *   (also of the same store directory) may be used from any threads at once.
 *   Processes sharing a store coordinate through its locks (src/store/STORE.md).
 * - Option structs start with a `size` member set by their _init function:
 *   fields added in later versions are read only when the caller's struct
 *   has them, so the ABI stays compatible.
 * - The library installs no signal handlers and leaves malloc settings
 *   alone; a mount is served by a daemon process it forks (see
 *   lazyroot_mount_image).
 */
#ifndef LAZYROOT_LAZYROOT_H
#define LAZYROOT_LAZYROOT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LAZYROOT_VERSION_MAJOR 0
#define LAZYROOT_VERSION_MINOR 2
#define LAZYROOT_VERSION_PATCH 0
#define LAZYROOT_VERSION "0.2.0"

#if defined(__GNUC__)
#define LAZYROOT_API __attribute__((visibility("default")))
#else
#define LAZYROOT_API
#endif

/* The library's version, "MAJOR.MINOR.PATCH" (may differ from the header's). */
LAZYROOT_API const char* lazyroot_version(void);

typedef enum lazyroot_status {
  LAZYROOT_OK = 0,
  LAZYROOT_INVALID_ARGUMENT = 1, /* a malformed reference, path, option */
  LAZYROOT_NOT_FOUND = 2,        /* image, blob, platform, user, file */
  LAZYROOT_CORRUPTION = 3,       /* bytes that fail a check (digest, format) */
  LAZYROOT_IO_ERROR = 4,         /* a system call failed */
  LAZYROOT_UNSUPPORTED = 5,
  LAZYROOT_UNAUTHORIZED = 6, /* the registry refused the credentials */
  LAZYROOT_NETWORK = 7,
  LAZYROOT_CANCELLED = 8,
  LAZYROOT_LIMIT_EXCEEDED = 9, /* the image is over a budget; the message names it */
  LAZYROOT_INTERNAL = 10       /* out of memory or a bug */
} lazyroot_status;

typedef struct lazyroot_error lazyroot_error;
LAZYROOT_API lazyroot_status lazyroot_error_code(const lazyroot_error* err);
LAZYROOT_API const char* lazyroot_error_message(const lazyroot_error* err);
LAZYROOT_API void lazyroot_error_free(lazyroot_error* err);
LAZYROOT_API void lazyroot_free(void* p);

/* The store: a directory of verified blobs, layer indexes and image records.
 * root NULL: $LAZYROOT_HOME, else $XDG_DATA_HOME/lazyroot, else
 * ~/.local/share/lazyroot (what the lazyroot command uses). */
typedef struct lazyroot_store lazyroot_store;
LAZYROOT_API lazyroot_status lazyroot_store_open(const char* root, lazyroot_store** out, lazyroot_error** err);
LAZYROOT_API void lazyroot_store_close(lazyroot_store* store);

/* Pull progress: bytes of layer blobs done so far out of the total. Called
 * from the pull's worker threads, one call at a time. */
typedef void (*lazyroot_progress_fn)(void* user, uint64_t done, uint64_t total);

/* Pull events, for a launcher that draws its own progress per blob. */
typedef enum lazyroot_pull_event_kind {
  LAZYROOT_PULL_RESOLVED = 1,      /* reference, digest (the manifest's), platform, layers, total (bytes) */
  LAZYROOT_PULL_BLOB_STARTED = 2,  /* digest, current (resumed at), total */
  LAZYROOT_PULL_BLOB_PROGRESS = 3, /* digest, current, total */
  LAZYROOT_PULL_BLOB_DONE = 4,     /* digest, total, already_present */
  LAZYROOT_PULL_NOTE = 5,          /* text: a retry, a resume, a restart */
  LAZYROOT_PULL_FINISHED = 6       /* digest (the manifest's) */
} lazyroot_pull_event_kind;
typedef struct lazyroot_pull_event {
  lazyroot_pull_event_kind kind;
  const char* reference; /* "" when the kind has none; valid during the call */
  const char* digest;
  const char* platform;
  const char* text;
  int layers;
  int already_present;
  uint64_t current;
  uint64_t total;
} lazyroot_pull_event;
/* Called from the pull's worker threads, one call at a time. */
typedef void (*lazyroot_pull_event_fn)(void* user, const lazyroot_pull_event* event);

typedef struct lazyroot_pull_options {
  size_t size;          /* sizeof(lazyroot_pull_options), set by _init */
  const char* platform; /* "os/arch[/variant]"; NULL: this host */
  /* Credentials; NULL: the auth files podman and docker use. */
  const char* username;
  const char* password;
  const char* authfile; /* a containers auth.json, read alone; NULL: $REGISTRY_AUTH_FILE, then the defaults */
  int insecure;         /* nonzero: plain HTTP to the registry */
  lazyroot_progress_fn progress;
  void* progress_user;
  /* Polled while transferring: when *cancel becomes nonzero the pull stops
   * with LAZYROOT_CANCELLED (set it from another thread or a signal
   * handler). NULL: not cancellable. */
  const volatile int* cancel;
  /* Since 0.2. */
  int no_tls_verify;             /* nonzero: accept any TLS certificate (skopeo's --tls-verify=false) */
  const char* const* cert_dirs;  /* NULL-terminated: more HOST[:PORT]/ca.crt directories to search first */
  int jobs;                      /* layers downloaded at once; 0: 3 */
  /* NULL-terminated "NAME=VALUE[,NAME=VALUE]" budgets (`lazyroot pull
   * --limit`), applied in order over the defaults; also given to the
   * indexes built during the pull. */
  const char* const* limits;
  lazyroot_pull_event_fn event;
  void* event_user;
  /* Mirrors and registry rules. NULL: containers-registries.conf(5)'s
   * lookup ($CONTAINERS_REGISTRIES_CONF, $XDG_CONFIG_HOME/containers/
   * registries.conf, /etc/containers/registries.conf + registries.conf.d),
   * and containerd's /etc/containerd/certs.d/HOST/hosts.toml. */
  const char* registries_conf; /* this file and no other */
  const char* hosts_dir;       /* containerd's hosts directory, read in place of registries.conf */
  int verbose;                 /* nonzero: a LAZYROOT_PULL_NOTE names the endpoint of the manifest and each blob */
} lazyroot_pull_options;
LAZYROOT_API void lazyroot_pull_options_init(lazyroot_pull_options* options);

/* What a pull did. Strings are the caller's: lazyroot_pull_result_free. */
typedef struct lazyroot_pull_result {
  size_t size;            /* sizeof(lazyroot_pull_result), set by _init */
  char* reference;        /* as stored: "127.0.0.1:5000/app:v1" */
  char* manifest_digest;  /* "sha256:…" */
  char* platform;         /* "linux/amd64" */
  uint64_t blobs_fetched; /* blobs transferred (not already in the store) */
  uint64_t bytes_fetched; /* bytes received */
  int pulled;             /* 0: lazyroot_ensure found the image in the store */
} lazyroot_pull_result;
LAZYROOT_API void lazyroot_pull_result_init(lazyroot_pull_result* result);
/* Frees the strings (the struct itself is the caller's). */
LAZYROOT_API void lazyroot_pull_result_free(lazyroot_pull_result* result);

/* Pulls `reference` ("alpine", "ghcr.io/o/app:v1", "host:5000/x@sha256:…",
 * "http://127.0.0.1:5000/x:1", "oci:DIR[:tag]", "oci-archive:FILE[:tag]",
 * "docker-archive:FILE[:ref|:@N]") into the store; every blob
 * is verified while it streams in. options NULL: the defaults. result (if
 * not NULL, initialised with lazyroot_pull_result_init) says what was
 * pulled. */
LAZYROOT_API lazyroot_status lazyroot_pull(lazyroot_store* store, const char* reference,
                                           const lazyroot_pull_options* options, lazyroot_pull_result* result,
                                           lazyroot_error** err);
/* lazyroot_pull, but only when the image is not in the store yet. */
LAZYROOT_API lazyroot_status lazyroot_ensure(lazyroot_store* store, const char* reference,
                                             const lazyroot_pull_options* options, lazyroot_pull_result* result,
                                             lazyroot_error** err);

/* The image as `lazyroot inspect` shows it (JSON): reference, digest,
 * platform, layers, history and the image config. */
LAZYROOT_API lazyroot_status lazyroot_image_info(lazyroot_store* store, const char* reference, char** json,
                                                 lazyroot_error** err);

/* docker run's overrides of the image config. */
typedef struct lazyroot_launch_options {
  size_t size; /* sizeof(lazyroot_launch_options), set by _init */
  /* --entrypoint: replaces the image's Entrypoint ("" clears it) and drops
   * its Cmd, as docker run does. NULL: the image's. */
  const char* entrypoint;
  /* Trailing arguments: replace the image's Cmd when cmd_set is nonzero
   * (cmd NULL or empty: no Cmd). */
  const char* const* cmd;
  int cmd_set;
  const char* user;        /* USER[:GROUP]; NULL: the image's User */
  const char* workdir;     /* NULL: WorkingDir, else "/" */
  const char* const* env;  /* NULL-terminated KEY=VALUE, replacing the image's KEY, in order */
  const char* const* limits; /* budgets, as lazyroot_pull_options.limits */
} lazyroot_launch_options;
LAZYROOT_API void lazyroot_launch_options_init(lazyroot_launch_options* options);

/* The launch configuration of a pulled image, with docker's rules
 * (Entrypoint + Cmd, PATH and HOME defaults, WorkingDir) and the user
 * resolved as runc does from the image's own /etc/passwd and /etc/group,
 * read from the layers. A user missing from the image is LAZYROOT_NOT_FOUND
 * naming it. options NULL: the image's own. */
typedef struct lazyroot_launch lazyroot_launch;
LAZYROOT_API lazyroot_status lazyroot_launch_config(lazyroot_store* store, const char* reference,
                                                    const lazyroot_launch_options* options, lazyroot_launch** out,
                                                    lazyroot_error** err);
/* NULL-terminated arrays, valid until lazyroot_launch_free. */
LAZYROOT_API const char* const* lazyroot_launch_argv(const lazyroot_launch* launch);
LAZYROOT_API const char* const* lazyroot_launch_envp(const lazyroot_launch* launch);
LAZYROOT_API const char* lazyroot_launch_cwd(const lazyroot_launch* launch);
LAZYROOT_API uint32_t lazyroot_launch_uid(const lazyroot_launch* launch);
LAZYROOT_API uint32_t lazyroot_launch_gid(const lazyroot_launch* launch);
LAZYROOT_API size_t lazyroot_launch_additional_gids(const lazyroot_launch* launch, const uint32_t** gids);
/* All of it as `lazyroot inspect --launch` prints it (JSON). */
LAZYROOT_API const char* lazyroot_launch_json(const lazyroot_launch* launch);
/* The OCI runtime-spec config.json of the image (what extract --bundle
 * writes and /.krun_config.json holds: libkrun's init reads process.args,
 * env and cwd from it). */
LAZYROOT_API const char* lazyroot_launch_runtime_spec(const lazyroot_launch* launch);
LAZYROOT_API void lazyroot_launch_free(lazyroot_launch* launch);

/* A line worth telling the user ("… is not in the store: pulling it",
 * "warning: …"), valid during the call. */
typedef void (*lazyroot_note_fn)(void* user, const char* line);

typedef struct lazyroot_extract_options {
  size_t size;        /* sizeof(lazyroot_extract_options), set by _init */
  /* With dir NULL: after the cached rootfs is ready, a private, writable
   * copy of it here (absent or empty), modes, owners, xattrs, mtimes,
   * hardlinks and holes kept. reflink: the copy shares extents (FICLONE);
   * fails rather than copy when the file system cannot. */
  const char* copy;
  int reflink;
  /* With dir NULL: an OCI runtime bundle here (absent or empty):
   * bundle/rootfs and bundle/config.json, for `runc run -b`. */
  const char* bundle;
  /* /.krun_config.json (the runtime config libkrun's init reads) written at
   * the top of the root, replacing whatever the image has at that name
   * without writing through it. Needs dir, copy or bundle. */
  int krun_config;
  int rootless;       /* nonzero: no chown, no devices (always so when not root) */
  unsigned threads;   /* file-writing threads; 0: one per CPU */
  uint64_t max_size;  /* the most file data to write; 0: the target's free space less a margin */
  const char* const* limits; /* budgets, as lazyroot_pull_options.limits */
  /* Polled: when *cancel becomes nonzero the extract (or the pull before
   * it) stops with LAZYROOT_CANCELLED and removes what it wrote. A positive
   * signal number there is named in the message ("interrupted by SIGINT");
   * any negative value reads "cancelled". */
  const volatile int* cancel;
  /* Not NULL: pull the image first when it is not in the store, with these
   * options, under the same store lock as the extract (gc cannot come in
   * between). NULL: a missing image is LAZYROOT_NOT_FOUND. */
  const lazyroot_pull_options* pull;
  lazyroot_note_fn note;
  void* note_user;
} lazyroot_extract_options;
LAZYROOT_API void lazyroot_extract_options_init(lazyroot_extract_options* options);

typedef struct lazyroot_tree_counts {
  uint64_t files, dirs, symlinks, hardlinks;
  uint64_t devices;    /* devices and fifos (a copy: everything else) */
  uint64_t warnings;   /* xattrs refused, device placeholders */
  uint64_t bytes;      /* file data written (holes excluded) */
  uint64_t zero_bytes; /* runs of zeros left as holes */
  double seconds;
} lazyroot_tree_counts;

typedef struct lazyroot_extract_result {
  size_t size;      /* sizeof(lazyroot_extract_result), set by _init */
  char* path;       /* the root written (dir, copy) or the bundle directory */
  char* cached_dir; /* the store's cached rootfs, when it was used; else NULL */
  int extracted;    /* a tree was written now (0: the cached one was reused) */
  int rootless;     /* the mode the extraction used */
  lazyroot_tree_counts extract; /* when extracted */
  int copied;
  lazyroot_tree_counts copy;    /* when copied */
} lazyroot_extract_result;
LAZYROOT_API void lazyroot_extract_result_init(lazyroot_extract_result* result);
LAZYROOT_API void lazyroot_extract_result_free(lazyroot_extract_result* result);

/* Writes the image's merged root filesystem into dir (absent or empty; it
 * appears only when complete), or, with dir NULL, into the store's cached
 * extract (<store>/rootfs/<manifest hex>, as `lazyroot extract IMAGE`): made
 * once, checked against the image before each reuse and extracted again if
 * something changed it; options may ask for a copy of it or a bundle. As
 * root: owners, modes, devices; otherwise rootless (the image's uid:gid:mode
 * in user.containers.override_stat). The cached tree is shared: give it to
 * a VM read-only. options and result may be NULL. */
LAZYROOT_API lazyroot_status lazyroot_extract(lazyroot_store* store, const char* reference, const char* dir,
                                              const lazyroot_extract_options* options,
                                              lazyroot_extract_result* result, lazyroot_error** err);

#define LAZYROOT_READ_AHEAD_KERNEL 0xffffffffu
typedef struct lazyroot_mount_options {
  size_t size;       /* sizeof(lazyroot_mount_options), set by _init */
  int allow_other;   /* nonzero: other users may enter (with default_permissions) */
  int krun_config;   /* nonzero: serve /.krun_config.json (the runtime config libkrun's init reads) */
  uint64_t cache_mib; /* decoded-data cache; 0 here means the default, 256 */
  /* Since 0.2. */
  int no_cache;             /* nonzero: no decoded-data cache (cache_mib ignored) */
  unsigned read_ahead_kib;  /* read-ahead for this mount; 0: 1024; LAZYROOT_READ_AHEAD_KERNEL: the kernel's */
  unsigned threads;         /* FUSE worker threads at most; 0: 8 */
  int suid;                 /* honour setuid/setgid bits (root only; default nosuid) */
  int dev;                  /* allow device nodes (root only; default nodev) */
  const char* const* limits; /* budgets, as lazyroot_pull_options.limits */
  /* Not NULL: pull the image first when it is not in the store, with these
   * options. NULL: a missing image is LAZYROOT_NOT_FOUND. */
  const lazyroot_pull_options* pull;
  lazyroot_note_fn note;    /* "… is not in the store: pulling it" */
  void* note_user;
} lazyroot_mount_options;
LAZYROOT_API void lazyroot_mount_options_init(lazyroot_mount_options* options);

/* Mounts a pulled image read-only at dir (an existing directory) and
 * returns once the mount is ready. The FUSE session runs in a daemon
 * process the library forks (twice: it is never the caller's child), so the
 * mount outlives a krun_start_enter() that takes over the process; it keeps
 * the image's blobs from gc while mounted. Fork without exec: call it when
 * no other thread holds a lock the daemon could need. */
typedef struct lazyroot_mount lazyroot_mount;
LAZYROOT_API lazyroot_status lazyroot_mount_image(lazyroot_store* store, const char* reference, const char* dir,
                                                  const lazyroot_mount_options* options, lazyroot_mount** out,
                                                  lazyroot_error** err);
LAZYROOT_API const char* lazyroot_mount_dir(const lazyroot_mount* mount);
/* Unmounts (lazily, detaching at once, if files are still open: the daemon
 * exits once the last is closed) and frees the handle, also on error. */
LAZYROOT_API lazyroot_status lazyroot_unmount(lazyroot_mount* mount, lazyroot_error** err);
/* Frees the handle and leaves the mount in place (`lazyroot umount DIR`
 * ends it later). */
LAZYROOT_API void lazyroot_mount_release(lazyroot_mount* mount);

#ifdef __cplusplus
}
#endif

#endif /* LAZYROOT_LAZYROOT_H */
