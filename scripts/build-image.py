#!/usr/bin/env python3
"""Builds dyno-scaler's container image from scratch, without pulling a base image: the release binary, the
shared libraries it links (as `ldd` lists them), the system's CA certificates, and a non-root user, as one layer
of an OCI image layout (https://github.com/opencontainers/image-spec) in the given directory.

Usage: build-image.py BINARY VERSION OUT_DIR          (an OCI image layout)
       build-image.py --rootfs BINARY VERSION ROOT_DIR  (the same files as a directory: the Dockerfile's last
                                                         stage copies it onto `scratch`)
"""
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

UID = 10001


def add_file(tar, src, dest, mode=None):
    info = tar.gettarinfo(src, arcname=dest.lstrip("/"))
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = 0
    if mode is not None:
        info.mode = mode
    with open(src, "rb") as f:
        tar.addfile(info, f)


def add_dir(tar, path, mode=0o755, uid=0):
    info = tarfile.TarInfo(path.lstrip("/"))
    info.type = tarfile.DIRTYPE
    info.mode = mode
    info.uid = info.gid = uid
    info.mtime = 0
    tar.addfile(info)


def add_bytes(tar, dest, data, mode=0o644):
    info = tarfile.TarInfo(dest.lstrip("/"))
    info.size = len(data)
    info.mode = mode
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def linked_libraries(binary):
    """The absolute paths `ldd` resolves, the loader included."""
    out = subprocess.run(["ldd", binary], check=True, capture_output=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split()
        if "=>" in parts:
            path = parts[parts.index("=>") + 1]
            if path.startswith("/"):
                libs.append(path)
        elif parts and parts[0].startswith("/"):
            libs.append(parts[0])
    return libs


def blob(out, data, media_type):
    digest = hashlib.sha256(data).hexdigest()
    os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(out, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def main():
    args = sys.argv[1:]
    rootfs = args[:1] == ["--rootfs"]
    binary, version, out = args[1:4] if rootfs else args[:3]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ["/etc", "/etc/ssl", "/etc/ssl/certs", "/usr", "/usr/local", "/usr/local/bin", "/lib", "/lib64"]:
            add_dir(tar, d)
        add_dir(tar, "/tmp", 0o1777)
        add_dir(tar, "/home", 0o755)
        add_dir(tar, "/home/scaler", 0o755, UID)
        add_file(tar, binary, "/usr/local/bin/dyno-scaler", 0o755)  # stripped by the release profile
        seen = set()
        for lib in linked_libraries(binary):
            real = os.path.realpath(lib)
            dest = lib if lib.startswith("/lib64/") else os.path.join("/lib", os.path.basename(lib))
            if dest in seen:
                continue
            seen.add(dest)
            add_file(tar, real, dest, 0o755)
        add_file(tar, "/etc/ssl/certs/ca-certificates.crt", "/etc/ssl/certs/ca-certificates.crt", 0o644)
        add_bytes(tar, "/etc/passwd", f"root:x:0:0:root:/root:/sbin/nologin\nscaler:x:{UID}:{UID}:dyno-scaler:/home/scaler:/sbin/nologin\n".encode())
        add_bytes(tar, "/etc/group", f"root:x:0:\nscaler:x:{UID}:\n".encode())
        # The loader finds the libraries in /lib.
        add_bytes(tar, "/etc/ld.so.conf", b"/lib\n")
    layer_tar = raw.getvalue()
    if rootfs:
        with tarfile.open(fileobj=io.BytesIO(layer_tar)) as tar:
            tar.extractall(out, numeric_owner=True)
        print(out)
        return
    diff_id = "sha256:" + hashlib.sha256(layer_tar).hexdigest()
    layer_gz = gzip.compress(layer_tar, mtime=0)

    os.makedirs(out, exist_ok=True)
    layer = blob(out, layer_gz, "application/vnd.oci.image.layer.v1.tar+gzip")
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "User": f"{UID}:{UID}",
            "Env": ["PATH=/usr/local/bin", "LD_LIBRARY_PATH=/lib", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"],
            "Entrypoint": ["/usr/local/bin/dyno-scaler"],
            "Cmd": ["run"],
            "WorkingDir": "/home/scaler",
            "Labels": {"org.opencontainers.image.title": "dyno-scaler", "org.opencontainers.image.version": version},
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "scripts/build-image"}],
    }
    config_desc = blob(out, json.dumps(config, sort_keys=True).encode(), "application/vnd.oci.image.config.v1+json")
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": config_desc, "layers": [layer]}
    manifest_desc = blob(out, json.dumps(manifest, sort_keys=True).encode(), "application/vnd.oci.image.manifest.v1+json")
    manifest_desc["annotations"] = {"org.opencontainers.image.ref.name": version}
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [manifest_desc]}, f)
    with open(os.path.join(out, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    print(out)


if __name__ == "__main__":
    main()
