/* pull IMAGE [CANCEL_AFTER_BYTES]: lazyroot_pull with a progress callback
 * and cancellation, in C. Prints "progress DONE TOTAL" lines and then the
 * manifest digest. With CANCEL_AFTER_BYTES, sets the cancel flag once that
 * many layer bytes have arrived: the pull stops with LAZYROOT_CANCELLED
 * (exit 3), keeps what it downloaded for the next pull to resume, and
 * publishes nothing half-written.
 *
 *   cc -o pull pull.c $(pkg-config --cflags --libs lazyroot) */
#include <lazyroot/lazyroot.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

struct state {
  uint64_t cancel_after; /* 0: never */
  volatile int cancel;
  unsigned calls;
};

static void on_progress(void* user, uint64_t done, uint64_t total) {
  struct state* s = user;
  ++s->calls;
  printf("progress %" PRIu64 " %" PRIu64 "\n", done, total);
  if (s->cancel_after != 0 && done >= s->cancel_after) s->cancel = 1; /* any thread, even a signal handler */
}

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: pull IMAGE [CANCEL_AFTER_BYTES]\n");
    return 2;
  }
  struct state s = {argc == 3 ? strtoull(argv[2], NULL, 10) : 0, 0, 0};
  lazyroot_error* err = NULL;
  lazyroot_store* store = NULL;
  if (lazyroot_store_open(NULL, &store, &err) != LAZYROOT_OK) {
    fprintf(stderr, "pull: %s\n", lazyroot_error_message(err));
    lazyroot_error_free(err);
    return 1;
  }
  lazyroot_pull_options options;
  lazyroot_pull_options_init(&options);
  options.progress = on_progress;
  options.progress_user = &s;
  options.cancel = &s.cancel;
  lazyroot_pull_result result;
  lazyroot_pull_result_init(&result);
  lazyroot_status st = lazyroot_pull(store, argv[1], &options, &result, &err);
  int rc = 0;
  if (st == LAZYROOT_OK) {
    printf("digest %s\n", result.manifest_digest);
    printf("blobs %llu\n", (unsigned long long)result.blobs_fetched);
  } else {
    fprintf(stderr, "pull: status %d: %s\n", (int)st, lazyroot_error_message(err));
    rc = st == LAZYROOT_CANCELLED ? 3 : 1;
  }
  printf("calls %u\n", s.calls);
  lazyroot_pull_result_free(&result);
  lazyroot_error_free(err);
  lazyroot_store_close(store);
  return rc;
}
