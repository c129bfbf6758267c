#!/usr/bin/env python3
"""A real VM boots from a lazyroot mount: QEMU (TCG, there is no KVM here)
with Debian's kernel, a tiny initramfs built here (a static C init from
tests/tools/vm/vm_init.c plus the virtio-pci and 9p kernel modules), and the
FUSE mount of an image exported to the guest over virtio-9p (-virtfs). The
guest runs the image's entrypoint as the image's user, with the env, cwd and
groups of `lazyroot inspect --launch` (what a launcher would hand to
krun_set_exec / krun_set_env / krun_set_workdir), and the test reads what the
workload printed on the serial console: the merged tree (layer 2's file,
layer 2's whiteout), the user's ids as the image's own busybox `id` reports
them, the working directory and the environment. ~10-60 s under TCG."""

import glob
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_image as mi  # noqa: E402
import registry  # noqa: E402
from pull_harness import PullTestCase  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
QEMU = shutil.which("qemu-system-x86_64")
BUSYBOX = shutil.which("busybox")
KERNELS = sorted(glob.glob("/boot/vmlinuz-*"))
WANT_MODULES = ["virtio_pci", "9pnet_virtio", "9p"]


def kernel_and_modules():
    """The newest /boot kernel whose modules are installed, and its module
    directory."""
    for k in reversed(KERNELS):
        ver = os.path.basename(k)[len("vmlinuz-"):]
        mdir = "/lib/modules/" + ver
        if os.path.exists(os.path.join(mdir, "modules.dep")):
            return k, mdir
    return None, None


def module_load_order(mdir, names):
    """Module files (relative to mdir) to load, dependencies first, from
    modules.dep. A module built into the kernel is simply absent."""
    deps, by_name = {}, {}
    with open(os.path.join(mdir, "modules.dep")) as f:
        for line in f:
            mod, _, rest = line.partition(":")
            deps[mod] = rest.split()
            base = os.path.basename(mod).split(".ko")[0].replace("-", "_")
            by_name[base] = mod
    order = []

    def visit(mod):
        if mod in order:
            return
        for d in reversed(deps.get(mod, [])):
            visit(d)
        order.append(mod)
    for n in names:
        if n in by_name:
            visit(by_name[n])
    return order


def newc_cpio(entries):
    """A newc cpio archive of (name, mode, data) entries (directories with
    data None), as the kernel unpacks an initramfs."""
    out = bytearray()

    def add(name, mode, data, ino):
        name_b = name.encode() + b"\0"
        hdr = "070701" + "".join("%08X" % v for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name_b), 0))
        out.extend(hdr.encode() + name_b)
        out.extend(b"\0" * ((4 - len(out) % 4) % 4))
        out.extend(data)
        out.extend(b"\0" * ((4 - len(out) % 4) % 4))
    for i, (name, mode, data) in enumerate(entries, 1):
        add(name, mode, data if data is not None else b"", i)
    add("TRAILER!!!", 0, b"", 0)
    return bytes(out)


PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:App:/home/app:/bin/sh\n"
GROUP = "root:x:0:\napp:x:1001:\naudio:x:29:app\n"
WORKLOAD = ("echo \"hello $GREETING\"; id; echo \"cwd=$(pwd)\"; echo \"home=$HOME\"; cat /data/msg; "
            "test -e /data/gone || echo 'gone is gone'")


@unittest.skipUnless(QEMU and BUSYBOX and KERNELS, "qemu-system-x86, busybox-static and linux-image-amd64 needed")
class VmBoot(PullTestCase):
    def test_guest_runs_the_entrypoint_from_the_mount_as_the_images_user(self):
        kernel, mdir = kernel_and_modules()
        self.assertIsNotNone(kernel, "no /boot kernel with its modules")
        with open(BUSYBOX, "rb") as f:
            busybox = f.read()
        l1 = [{"path": "bin/busybox", "content": busybox, "mode": 0o755}] + [
            {"path": "bin/" + t, "type": "symlink", "target": "busybox"} for t in ("sh", "id", "cat", "echo", "test")
        ] + [{"path": "etc/passwd", "content": PASSWD}, {"path": "etc/group", "content": GROUP},
             {"path": "home/app", "type": "dir", "mode": 0o750, "uid": 1000, "gid": 1001},
             {"path": "data/msg", "content": "from layer 1\n"}, {"path": "data/gone", "content": "x"}]
        l2 = [{"path": "data/msg", "content": "message from layer 2\n"}, {"path": "data/.wh.gone", "content": ""}]
        image = mi.build_image([mi.build_layer(l1, compression="gzip"), mi.build_layer(l2, compression="zstd")],
                               config={"Entrypoint": ["/bin/sh", "-c"], "Cmd": [WORKLOAD], "User": "app",
                                       "WorkingDir": "/home/app", "Env": ["GREETING=from the image"]})
        regdir = tempfile.mkdtemp(prefix="lazyroot-reg-")
        self.addCleanup(shutil.rmtree, regdir, ignore_errors=True)
        reg = registry.start_registry("plain", regdir)
        self.addCleanup(reg.stop)
        mi.push(mi.RegistryClient(reg.host), "demo/vm", "v1", image)
        ref = "http://%s/demo/vm:v1" % reg.host
        self.pull_ok(ref)

        r = self.lazyroot("inspect", "--launch", ref)
        self.assertOk(r, "inspect --launch")
        launch = json.loads(r.stdout)
        self.assertEqual((launch["uid"], launch["gid"], launch["additional_gids"]), (1000, 1001, [29]))

        mnt = self.workdir("mnt")
        self.assertOk(self.lazyroot("mount", ref, mnt), "mount")
        self.addCleanup(self.lazyroot, "umount", mnt)

        conf = ["uid %d" % launch["uid"], "gid %d" % launch["gid"], "cwd " + launch["cwd"]]
        conf += ["group %d" % g for g in launch["additional_gids"]]
        conf += ["env " + e for e in launch["env"]] + ["arg " + a for a in launch["args"]]
        init = os.path.join(self.tmp, "init")
        subprocess.run(["cc", "-static", "-O2", "-o", init, os.path.join(HERE, "..", "tools", "vm", "vm_init.c")],
                       check=True)
        with open(init, "rb") as f:
            init_bytes = f.read()
        entries = [("init", 0o100755, init_bytes),
                   ("launch.conf", 0o100644, ("\n".join(conf) + "\n").encode())]
        listed = []
        for i, mod in enumerate(module_load_order(mdir, WANT_MODULES)):
            with open(os.path.join(mdir, mod), "rb") as f:
                data = f.read()
            if mod.endswith(".xz"):
                data = lzma.decompress(data)
            entries.append(("m%02d.ko" % i, 0o100644, data))
            listed.append("/m%02d.ko" % i)
        entries.append(("modules.list", 0o100644, ("\n".join(listed) + "\n").encode()))
        initrd = os.path.join(self.tmp, "initrd.cpio")
        with open(initrd, "wb") as f:
            f.write(newc_cpio(entries))

        cmd = [QEMU, "-machine", "q35", "-accel", "tcg", "-m", "512", "-smp", "1", "-nodefaults", "-no-user-config",
               "-display", "none", "-serial", "stdio", "-no-reboot", "-kernel", kernel, "-initrd", initrd,
               "-append", "console=ttyS0 panic=-1 quiet loglevel=3",
               "-virtfs", "local,path=%s,mount_tag=lzroot,security_model=passthrough,readonly=on" % mnt]
        p = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=600)
        out = p.stdout.replace("\r", "")
        self.assertIn("vm_init: root mounted", out, "guest did not mount the root\n" + out[-4000:] + p.stderr)
        self.assertIn("vm_init: workload exited 0", out, out[-4000:])
        self.assertIn("hello from the image", out)
        ids = re.search(r"uid=(\d+)\S* gid=(\d+)\S* groups=(\S+)", out)
        self.assertIsNotNone(ids, out[-4000:])
        self.assertEqual((ids.group(1), ids.group(2)), ("1000", "1001"))
        self.assertIn("29(audio)", ids.group(3))  # the image's own /etc/group names it
        self.assertIn("uid=1000(app)", out)
        self.assertIn("cwd=/home/app", out)
        self.assertIn("home=/home/app", out)
        self.assertIn("message from layer 2", out)
        self.assertNotIn("from layer 1", out)
        self.assertIn("gone is gone", out)


if __name__ == "__main__":
    unittest.main()
