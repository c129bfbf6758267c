// Which image xattrs a rootfs carries, for extract and mount alike (so the two
// always agree): all of them, security.capability included, except
// security.selinux, which umoci and containers/storage drop too — a label from
// the build host means nothing here, and the running system's policy (or the
// container runtime) decides labels.
#pragma once

#include <string_view>

namespace lazyroot {

inline bool RootfsKeepsXattr(std::string_view name) { return name != "security.selinux"; }

}  // namespace lazyroot
