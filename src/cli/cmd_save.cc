// `lazyroot save IMAGE DEST`: a stored image written out for skopeo, umoci,
// podman or docker load, with the store's manifest and blob digests.
#include <cstdio>

#include "src/cli/cli.h"
#include "src/cli/interrupt.h"
#include "src/image/reference.h"
#include "src/store/save_image.h"

namespace lazyroot::cli {

void AddSaveCommand(CLI::App& app, const GlobalOptions& global, Runner* run) {
  struct Args {
    std::string image, dest;
    bool quiet = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "save",
      "Write a pulled image out: the manifest, config and layers byte for byte as stored (same digests), as an "
      "OCI image layout, a tar of one, or a docker save tarball");
  cmd->add_option("IMAGE", args->image, "A pulled image, as `lazyroot images` lists it (it is not pulled here)")
      ->required();
  cmd->add_option("DEST", args->dest,
                  "oci:DIR[:TAG] (an OCI image layout: created, or added to with index.json's other entries kept; "
                  "TAG becomes org.opencontainers.image.ref.name), oci-archive:FILE[:TAG] (a tar of such a layout), "
                  "docker-archive:FILE[:REF] (for docker load: manifest.json naming the config and the layers as "
                  "stored, compressed or not, RepoTags REF or else IMAGE's own name; FILE ends at the first ':'). "
                  "An archive FILE is replaced whole; nothing is left half-written on failure")
      ->required();
  cmd->add_flag("-q,--quiet", args->quiet, "Print only the manifest digest");
  cmd->callback([args, &global, run] {
    *run = [args, &global]() -> int {
      auto dest = ParseReference(args->dest);
      if (!dest.ok()) return Fail(dest.status());
      if (dest->transport == Reference::Transport::kRegistry) {
        return Fail(Status::InvalidArgument("save: DEST \"" + args->dest +
                                            "\" is not oci:DIR[:TAG], oci-archive:FILE[:TAG] or "
                                            "docker-archive:FILE[:REF] (pushing to a registry is not supported)"));
      }
      // Shared: gc cannot remove the blobs being copied.
      auto store = OpenStoreShared(global);
      if (!store.ok()) return Fail(store.status());
      auto rec = FindImage(**store, args->image);
      if (!rec.ok()) return Fail(rec.status());
      // Ctrl-C stops the copy and removes the temp files instead of leaving them.
      InterruptScope interrupt;
      interrupt.Arm();
      auto saved = SaveImage(**store, *rec, *dest, interrupt.flag());
      if (!saved.ok()) return Fail(saved.status().WithContext("save " + rec->reference));
      if (args->quiet) {
        std::printf("%s\n", saved->manifest_digest.c_str());
      } else {
        std::printf("%s\nDigest: %s\nWrote %s, %llu bytes\n", dest->ToString().c_str(), saved->manifest_digest.c_str(),
                    Counted(saved->blobs, "blob").c_str(), static_cast<unsigned long long>(saved->bytes));
      }
      return kExitOk;
    };
  });
}

}  // namespace lazyroot::cli
