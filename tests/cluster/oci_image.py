#!/usr/bin/env python3
"""Writes an OCI image layout, as a tar that `ctr images import` accepts, without a Docker daemon.

Each --layer is a JSON list of [source, destination] pairs (a file copied to an absolute path in
the image; a source of null makes an empty directory). Layers are uncompressed and reproducible:
fixed times and owners, sorted entries, so the same inputs give the same digests and containerd
keeps what it already has.

    oci_image.py --name docker.io/modelops/worker:dev --out worker.tar \
        --layer libs.json --layer bin.json --entrypoint /opt/modelops/bin/modelops-worker \
        --user 65532:65532 --env PATH=/opt/modelops/bin:/usr/bin:/bin
"""

import argparse
import hashlib
import io
import json
import os
import stat
import sys
import tarfile
import tempfile


def tar_info(name, size=0, mode=0o644, kind=tarfile.REGTYPE):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.type = size, mode, kind
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    return info


def write_layer(entries, out):
    """Writes one layer tar of (source, destination) entries into the open file `out`."""
    dirs, files = set(), {}
    for source, dest in entries:
        dest = dest.lstrip("/")
        if source is None:
            dirs.add(dest.rstrip("/"))
        else:
            files[dest] = source
        parent = os.path.dirname(dest.rstrip("/"))
        while parent:
            dirs.add(parent)
            parent = os.path.dirname(parent)
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in sorted(dirs):
            mode = 0o1777 if d == "tmp" else 0o755
            tar.addfile(tar_info(d, mode=mode, kind=tarfile.DIRTYPE))
        for dest in sorted(files):
            source = files[dest]
            st = os.stat(source)  # follows links: the image holds the real file under the link's name
            mode = 0o755 if st.st_mode & stat.S_IXUSR else 0o644
            with open(source, "rb") as f:
                tar.addfile(tar_info(dest, size=st.st_size, mode=mode), f)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", required=True, help="full image reference, e.g. docker.io/modelops/worker:dev")
    p.add_argument("--out", required=True, help="the OCI layout tar to write")
    p.add_argument("--layer", action="append", default=[], help="JSON file: [[source, dest], ...]")
    p.add_argument("--entrypoint", nargs="*", default=[])
    p.add_argument("--user", default="")
    p.add_argument("--env", action="append", default=[])
    p.add_argument("--workdir", default="/")
    args = p.parse_args()

    blobs = {}  # digest -> (path or bytes)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(args.out))) as tmp:
        layers = []
        for i, spec in enumerate(args.layer):
            with open(spec) as f:
                entries = json.load(f)
            path = os.path.join(tmp, f"layer{i}.tar")
            with open(path, "wb") as out:
                write_layer(entries, out)
            digest = sha256_file(path)
            blobs[digest] = path
            layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                           "digest": f"sha256:{digest}", "size": os.path.getsize(path)})

        config = {
            "architecture": "amd64", "os": "linux",
            "config": {"Entrypoint": args.entrypoint, "Env": args.env, "User": args.user,
                       "WorkingDir": args.workdir, "Labels": {"org.opencontainers.image.source": "modelops"}},
            "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]},
            "history": [{"created_by": "tests/cluster/oci_image.py"} for _ in layers],
        }
        config_bytes = json.dumps(config, sort_keys=True).encode()
        config_digest = hashlib.sha256(config_bytes).hexdigest()
        blobs[config_digest] = config_bytes
        manifest = {
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": f"sha256:{config_digest}", "size": len(config_bytes)},
            "layers": layers,
        }
        manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
        manifest_digest = hashlib.sha256(manifest_bytes).hexdigest()
        blobs[manifest_digest] = manifest_bytes
        tag = args.name.rsplit(":", 1)[1] if ":" in args.name.rsplit("/", 1)[-1] else "latest"
        index = {
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": f"sha256:{manifest_digest}", "size": len(manifest_bytes),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {"io.containerd.image.name": args.name,
                                "org.opencontainers.image.ref.name": tag},
            }],
        }

        partial = args.out + ".partial"
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
            def add_bytes(name, data):
                tar.addfile(tar_info(name, size=len(data)), io.BytesIO(data))
            add_bytes("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
            add_bytes("index.json", json.dumps(index, sort_keys=True).encode())
            tar.addfile(tar_info("blobs", mode=0o755, kind=tarfile.DIRTYPE))
            tar.addfile(tar_info("blobs/sha256", mode=0o755, kind=tarfile.DIRTYPE))
            for digest, blob in sorted(blobs.items()):
                if isinstance(blob, bytes):
                    add_bytes(f"blobs/sha256/{digest}", blob)
                else:
                    with open(blob, "rb") as f:
                        tar.addfile(tar_info(f"blobs/sha256/{digest}", size=os.path.getsize(blob)), f)
        os.replace(partial, args.out)
    print(f"sha256:{manifest_digest}")


if __name__ == "__main__":
    sys.exit(main())
