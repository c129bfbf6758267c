#!/usr/bin/env python3
"""The demo image: a tiny runnable root file system in three layers.

  layer 1  busybox (static, from Debian's busybox-static) as /bin/busybox with
           sh/ls/cat/wc links, /etc/os-release, a file to be deleted later
  layer 2  /bin/hello (the Entrypoint), /etc/motd, a 4 MiB data file
  layer 3  a whiteout of layer 1's /etc/obsolete, an opaque /var/cache,
           and a replacement /etc/motd

The image runs as the user "demo" (uid 1000, in the group "staff" too), from
its own /etc/passwd and /etc/group. --variant v2 is the next release: layers
1 and 2 shared, layer 3 rebuilt with a new /etc/motd, a new /etc/app.conf,
/srv made private (0700).

usage: demo_image.py --registry HOST --repo demo/hello --tag v1 [--variant v1|v2]
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "tools"))
import make_image  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--registry", required=True)
    ap.add_argument("--repo", default="demo/hello")
    ap.add_argument("--tag", default="v1")
    ap.add_argument("--variant", choices=("v1", "v2"), default="v1")
    args = ap.parse_args()
    with open("/bin/busybox", "rb") as f:
        busybox = f.read()
    base = [
        {"path": "bin", "type": "dir"},
        {"path": "bin/busybox", "content": busybox, "mode": 0o755},
        *[{"path": "bin/" + n, "type": "symlink", "target": "busybox"} for n in ("sh", "ls", "cat", "wc", "echo")],
        {"path": "etc", "type": "dir"},
        {"path": "etc/os-release", "content": 'NAME="lazyroot demo"\nID=demo\n'},
        {"path": "etc/passwd", "content": "root:x:0:0:root:/root:/bin/sh\ndemo:x:1000:1000:Demo:/home/demo:/bin/sh\n"},
        {"path": "etc/group", "content": "root:x:0:\ndemo:x:1000:\nstaff:x:50:demo\n"},
        {"path": "home/demo", "type": "dir", "mode": 0o755, "uid": 1000, "gid": 1000},
        {"path": "etc/obsolete", "content": "removed by layer 3\n"},
        {"path": "var/cache/old", "content": "hidden by an opaque dir in layer 3\n"},
        {"path": "tmp", "type": "dir", "mode": 0o1777},
    ]
    app = [
        {"path": "bin/hello", "mode": 0o755,
         "content": "#!/bin/sh\necho \"hello from $(cat /etc/os-release | head -n1) in a lazyroot\"\n"
                    "echo \"$(ls /bin | wc -l) programs in /bin; motd: $(cat /etc/motd)\"\n"},
        {"path": "etc/motd", "content": "first motd\n"},
        {"path": "srv/data.bin", "content": make_image.random_bytes(4 << 20, 7)},
    ]
    fixups = [
        {"path": "etc/.wh.obsolete", "content": ""},
        {"path": "var/cache", "type": "dir"},
        {"path": "var/cache/.wh..wh..opq", "content": ""},
        {"path": "var/cache/new", "content": "fresh\n"},
        {"path": "etc/motd", "content": "welcome to the demo\n"},
    ]
    if args.variant == "v2":
        fixups[-1] = {"path": "etc/motd", "content": "welcome to release 2 of the demo\n"}
        fixups += [{"path": "etc/app.conf", "content": "threads=4\n"},
                   {"path": "srv", "type": "dir", "mode": 0o700}]
    layers = [make_image.build_layer(base), make_image.build_layer(app), make_image.build_layer(fixups)]
    img = make_image.build_image(layers, fmt="oci", config={
        "Entrypoint": ["/bin/hello"], "Env": ["PATH=/bin"], "WorkingDir": "/home/demo", "User": "demo",
        "Labels": {"org.opencontainers.image.title": "lazyroot demo"}})
    client = make_image.RegistryClient(args.registry, scheme="http")
    print(json.dumps(make_image.push(client, args.repo, args.tag, img)))


if __name__ == "__main__":
    main()
