#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz targets into fuzz/seeds/<target>/ (committed; re-run after
changing this file). Each seed is a small valid or deliberately hostile document, so the fuzzer
starts from inputs that reach deep into the parsers instead of rediscovering JSON and tar."""
import io
import json
import os
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
D = "sha256:" + "a" * 64
E = "sha256:" + "b" * 64


def put(target, name, data):
    d = os.path.join(HERE, "seeds", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def js(v):
    return json.dumps(v, separators=(",", ":"))


# runtime_config: config.json documents.
base = {
    "ociVersion": "1.0.2",
    "root": {"path": "rootfs", "readonly": True},
    "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                "env": ["PATH=/bin"], "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
                "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"]}},
    "hostname": "skiff",
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
               {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
               {"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind", "ro", "idmap"]}],
    "linux": {"namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"},
                             {"type": "mount"}, {"type": "cgroup"}],
              "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"]},
}
put("runtime_config", "minimal.json", js({"ociVersion": "1.0.0", "root": {"path": "r"}}))
put("runtime_config", "default.json", js(base))
userns = json.loads(js(base))
userns["linux"]["namespaces"] += [{"type": "user"}, {"type": "time"}]
userns["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
userns["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
userns["linux"]["timeOffsets"] = {"monotonic": {"secs": 10, "nanosecs": 5}}
userns["linux"]["namespaces"][1] = {"type": "network", "path": "/var/run/netns/x"}
put("runtime_config", "userns.json", js(userns))
sec = json.loads(js(base))
sec["linux"]["seccomp"] = {
    "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"],
    "flags": ["SECCOMP_FILTER_FLAG_LOG"],
    "syscalls": [
        {"names": ["read", "write", "exit_group", "nosuchcall"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"},
        {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
    ],
}
put("runtime_config", "seccomp.json", js(sec))

# image_manifest: the first byte picks the transport media type (0: none, 1: OCI manifest, 2: OCI index).
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D, "size": 7023},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": E, "size": 32654},
                       {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": D, "size": 16724},
                       {"mediaType": "application/vnd.example.unknown", "digest": E, "size": 1}],
            "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}}
put("image_manifest", "oci-manifest", b"\x00" + js(manifest).encode())
nomt = dict(manifest)
del nomt["mediaType"]
put("image_manifest", "manifest-no-mediatype", b"\x01" + js(nomt).encode())
index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
         "manifests": [
             {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": D, "size": 528,
              "platform": {"architecture": "amd64", "os": "linux"}},
             {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": E, "size": 528,
              "platform": {"architecture": "arm", "os": "linux", "variant": "v7"}},
             {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": E, "size": 528,
              "platform": {"architecture": "unknown", "os": "unknown"},
              "annotations": {"vnd.docker.reference.type": "attestation-manifest"}}]}
put("image_manifest", "oci-index", b"\x00" + js(index).encode())
dlist = dict(index, mediaType="application/vnd.docker.distribution.manifest.list.v2+json")
put("image_manifest", "docker-list", b"\x04" + js(dlist).encode())
put("image_manifest", "schema1", b"\x00" + js({"schemaVersion": 1, "name": "x", "fsLayers": []}).encode())

# image_config.
config = {"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
          "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], "WorkingDir": "/", "User": "1000:1000",
                     "ExposedPorts": {"80/tcp": {}}, "Labels": {"a": "b"}},
          "rootfs": {"type": "layers", "diff_ids": [D, E]},
          "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD"},
                      {"created_by": "CMD", "empty_layer": True}]}
put("image_config", "config.json", js(config))
put("image_config", "arm.json", js({"architecture": "arm", "variant": "v6", "os": "linux",
                                     "rootfs": {"type": "layers", "diff_ids": []}}))


# layer_tar: first byte = options (bit 0: gzip-wrap the rest, bit 1: rootless), then a tar.
def tar(entries, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for e in entries:
            info = tarfile.TarInfo(e["name"])
            info.type = e.get("type", tarfile.REGTYPE)
            info.mode = e.get("mode", 0o644)
            info.uid, info.gid = e.get("uid", 0), e.get("gid", 0)
            info.mtime = 1700000000
            info.linkname = e.get("link", "")
            info.devmajor, info.devminor = e.get("dev", (0, 0))
            if "pax" in e:
                info.pax_headers = e["pax"]
            data = e.get("data", b"")
            info.size = len(data) if info.type == tarfile.REGTYPE else 0
            t.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
        end = t.offset
    # Keep the two end-of-archive blocks, drop the record padding.
    return buf.getvalue()[: end + 1024]


F, DIR, SYM, LNK = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE
tree = tar([
    {"name": "./", "type": DIR, "mode": 0o755},
    {"name": "etc/", "type": DIR, "mode": 0o755},
    {"name": "etc/passwd", "data": b"root:x:0:0::/root:/bin/sh\n"},
    {"name": "bin/sh", "data": b"\x7fELF", "mode": 0o4755, "uid": 1000, "gid": 1000},
    {"name": "bin/ash", "type": LNK, "link": "bin/sh"},
    {"name": "usr/bin/env", "type": SYM, "link": "../../bin/sh"},
    {"name": "dev/null", "type": tarfile.CHRTYPE, "dev": (1, 3), "mode": 0o666},
    {"name": "dev/sda", "type": tarfile.BLKTYPE, "dev": (8, 0)},
    {"name": "run/fifo", "type": tarfile.FIFOTYPE},
    {"name": "opt/x", "data": b"x", "pax": {"SCHILY.xattr.user.comment": "hi",
                                             "SCHILY.xattr.trusted.overlay.opaque": "y",
                                             "SCHILY.xattr.security.capability": "\x01\x00\x00\x02"}},
    {"name": "secret/", "type": DIR, "mode": 0o000},
    {"name": "secret/f", "data": b"s", "mode": 0o000},
])
put("layer_tar", "tree", b"\x00" + tree)
put("layer_tar", "tree-gzip", b"\x01" + tree)
put("layer_tar", "tree-rootless", b"\x02" + tree)
put("layer_tar", "whiteouts", b"\x00" + tar([
    {"name": "a/b", "data": b"1"},
    {"name": "a/.wh.b"},
    {"name": "a/.wh..wh..opq"},
    {"name": "c/.wh.."},
    {"name": ".wh.a"},
]))
# Escape attempts: each must be refused or stay inside the layer.
put("layer_tar", "escape-dotdot", b"\x00" + tar([{"name": "../x", "data": b"x"},
                                                  {"name": "a/../../y", "data": b"y"}], tarfile.GNU_FORMAT))
put("layer_tar", "escape-symlink", b"\x00" + tar([
    {"name": "up", "type": SYM, "link": ".."},
    {"name": "up/x", "data": b"x"},
    {"name": "root", "type": SYM, "link": "/"},
    {"name": "root/tmp/y", "data": b"y"},
    {"name": "deep", "type": SYM, "link": "a/../../.."},
    {"name": "deep/z", "type": DIR},
]))
put("layer_tar", "escape-hardlink", b"\x00" + tar([
    {"name": "l", "type": LNK, "link": "../outside"},
    {"name": "s", "type": SYM, "link": ".."},
    {"name": "m", "type": LNK, "link": "s/p"},
    {"name": "self", "type": LNK, "link": "self"},
]))
put("layer_tar", "replace", b"\x00" + tar([
    {"name": "d/f", "data": b"1"},
    {"name": "d", "data": b"now a file"},
    {"name": "d/g", "data": b"2"},
    {"name": "d", "type": DIR},
]))

# archive_manifest: first byte even = manifest.json, odd = index.json.
put("archive_manifest", "manifest.json", b"\x00" + js([
    {"Config": "blobs/sha256/" + "a" * 64, "RepoTags": ["busybox:latest", "localhost:5000/a/b:1"],
     "Layers": ["blobs/sha256/" + "b" * 64, "abc/layer.tar"]},
    {"Config": "c.json", "RepoTags": None, "Layers": []}]).encode())
put("archive_manifest", "index.json", b"\x01" + js({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": D, "size": 1,
                   "annotations": {"io.containerd.image.name": "docker.io/library/busybox:latest",
                                   "org.opencontainers.image.ref.name": "latest"}},
                  {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": E, "size": 2,
                   "annotations": {"org.opencontainers.image.ref.name": "example.com/x:y"}}]}).encode())

# registry_auth: WWW-Authenticate lines, NUL, a token server or error body.
put("registry_auth", "bearer",
    'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
    'scope="repository:library/busybox:pull",error="insufficient_scope"\n'
    'Basic realm="Registry Realm"\0{"token":"eyJ","access_token":"eyJ","expires_in":300}')
put("registry_auth", "basic", 'Basic realm="a \\"quoted\\" realm", charset=UTF-8\0'
    '{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}')
put("registry_auth", "unquoted", "bearer realm=http://127.0.0.1:5001/auth,service=x\0"
    '{"access_token":"t"}')


# template: Go template text, NUL, optional JSON data (docker users' --format idioms).
for i, t in enumerate([
    "{{.Name}}",
    "{{range .Mounts}}{{.Destination}} {{end}}",
    "{{if .State.Running}}up{{else}}down{{end}}",
    "{{with .State}}{{.Status}}{{end}}",
    "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}}{{end}}",
    '{{printf "%s-%d" .Name .State.Pid}}',
    "{{json .}}",
    'table {{.Name}}\t{{upper .State.Status}}',
    '{{define "x"}}{{.}}{{end}}{{template "x" .Name}}',
    "{{- range $i, $e := .Config.Env}}{{if eq $i 0}}{{continue}}{{end}}{{$e}}{{break}}{{end -}}",
    '{{index .Config.Labels "a"}} {{len .Mounts}} {{slice .Name 1}}',
    '{{join (split "a,b" ",") "+"}} {{truncate .Name 3}} {{pad .Name 1 1}}',
]):
    put("template", "seed%02d" % i, t)
put("template", "with-data", '{{.A.B}}\x00{"A": {"B": [1, 2.5, null, true]}}')
