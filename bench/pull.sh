#!/bin/sh
# Pull + unpack of a 5-layer image (~180 MB unpacked, built from files of this machine) from a
# loopback docker-registry into an empty store: skiff vs `skopeo copy` + `umoci unpack`, and vs
# `docker pull` (Debian's dockerd, started by this script on a private socket and data root, with
# its images removed before each run) when dockerd is installed (NO_DOCKER=1 skips it).
# Also reports disk use of two images sharing 4 layers.
# Needs: docker-registry skopeo umoci hyperfine jq; a built skiff (SKIFF=path, default target/release/skiff).
set -eu
HERE=$(cd "$(dirname "$0")/.." && pwd)
SKIFF=${SKIFF:-$HERE/target/release/skiff}
[ -x "$SKIFF" ] || { echo "build skiff first: cargo build --release -p skiff" >&2; exit 1; }
RUNS=${RUNS:-5}
W=$(mktemp -d /tmp/skiff-bench-pull.XXXXXX)
REG_PID=
DPID=
cleanup() {
  [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null
  if [ -n "$DPID" ]; then
    kill "$DPID" 2>/dev/null
    for i in $(seq 100); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
    grep " $W/" /proc/self/mountinfo | cut -d' ' -f5 | sort -r | while read -r m; do umount -l "$m"; done
  fi
  rm -rf "$W"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$W/reg.yml" <<YML
version: 0.1
log: {level: error}
storage:
  filesystem: {rootdirectory: $W/regdata}
http: {addr: 127.0.0.1:$PORT}
YML
docker-registry serve "$W/reg.yml" >"$W/reg.log" 2>&1 &
REG_PID=$!
for i in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/v2/" >/dev/null && break; sleep 0.1; done

# --- build an OCI layout with 5 gzip layers (~36 MB of files each) ---
L=$W/layout; mkdir -p "$L/blobs/sha256"
echo '{"imageLayoutVersion":"1.0.0"}' > "$L/oci-layout"
layer() { # $1 = source dir, $2 = byte budget -> prints "digest diffid size"
  find "$1" -type f -size +0 -readable -printf '%s\t%p\n' 2>/dev/null | sort -t "$(printf '\t')" -k2 |
    awk -F '\t' -v max="$2" '{ if (s + $1 > max) next; s += $1; print $2 }' > "$W/list"
  tar -cf "$W/l.tar" --owner=0 --group=0 --ignore-failed-read -T "$W/list" 2>/dev/null || [ $? -eq 1 ]
  diff=$(sha256sum "$W/l.tar" | cut -d' ' -f1)
  gzip -6 -c "$W/l.tar" > "$W/l.tgz"
  dig=$(sha256sum "$W/l.tgz" | cut -d' ' -f1)
  mv "$W/l.tgz" "$L/blobs/sha256/$dig"
  echo "$dig $diff $(stat -c %s "$L/blobs/sha256/$dig") $(stat -c %s "$W/l.tar")"
  rm -f "$W/l.tar"
}
image() { # $1 = tag, rest = "digest diffid size usize" lines on stdin
  layers=$(cat)
  diffs=$(echo "$layers" | awk '{printf "%s\"sha256:%s\"", (NR>1?",":""), $2}')
  ls=$(echo "$layers" | awk '{printf "%s{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:%s\",\"size\":%s}", (NR>1?",":""), $1, $3}')
  printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":[%s]}}' "$diffs" > "$W/cfg"
  cd=$(sha256sum "$W/cfg" | cut -d' ' -f1); cs=$(stat -c %s "$W/cfg"); mv "$W/cfg" "$L/blobs/sha256/$cd"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' "$cd" "$cs" "$ls" > "$W/man"
  md=$(sha256sum "$W/man" | cut -d' ' -f1); ms=$(stat -c %s "$W/man"); mv "$W/man" "$L/blobs/sha256/$md"
  echo "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$md\",\"size\":$ms,\"annotations\":{\"org.opencontainers.image.ref.name\":\"$1\"}}"
}
echo "building layers from /usr ..." >&2
: > "$W/layers"
for src in /usr/bin /usr/lib/x86_64-linux-gnu /usr/share /usr/lib/go-1.19 /usr/lib/gcc; do
  [ -d "$src" ] || src=/usr/lib
  layer "$src" 36000000 >> "$W/layers"
done
layer /usr/libexec 20000000 > "$W/layer6"
D1=$(image one < "$W/layers")
D2=$( (head -4 "$W/layers"; cat "$W/layer6") | image two)
echo "{\"schemaVersion\":2,\"manifests\":[$D1,$D2]}" > "$L/index.json"
GZ=$(awk '{s+=$3} END {print s}' "$W/layers"); UN=$(awk '{s+=$4} END {print s}' "$W/layers")
echo "image: 5 layers, $((GZ/1000000)) MB gzip, $((UN/1000000)) MB unpacked" >&2
for t in one two; do
  skopeo copy -q --dest-tls-verify=false "oci:$L:$t" "docker://127.0.0.1:$PORT/bench/img:$t"
done
REF=127.0.0.1:$PORT/bench/img:one

# --- measure ---
# Each run starts from empty directories. The previous run's files are moved aside, not deleted:
# ext4 passes over recently freed inodes when allocating (ialloc's recently_deleted, a minute or more), and
# creating ~3,400 files right after deleting ~3,400 scans them all, which measured seconds of
# kernel time per run here (perf: recently_deleted under ext4_create) for every tool alike.
mkdir -p "$W/trash"
hyperfine -w 1 -r "$RUNS" -N --export-json "$W/h.json" \
  --prepare "sh -c 'for d in $W/sk $W/oci $W/bundle; do [ -e \$d ] && mv \$d $W/trash/\$(basename \$d).\$(date +%s%N); done; true'" \
  -n skiff "$SKIFF --root $W/sk pull -q $REF" \
  -n skopeo+umoci "sh -c 'skopeo copy -q --src-tls-verify=false docker://$REF oci:$W/oci:one && umoci unpack --image $W/oci:one $W/bundle >/dev/null'"
S=$(jq '.results[] | select(.command=="skiff") | .mean' "$W/h.json")
P=$(jq '.results[] | select(.command=="skopeo+umoci") | .mean' "$W/h.json")
echo "skiff pull: ${S}s   skopeo copy + umoci unpack: ${P}s"
echo "ratio skiff/skopeo+umoci = $(echo "$S $P" | awk '{printf "%.2f", $1/$2}')"

# --- docker pull, side by side with skiff again (same machine state) ---
if [ -z "${NO_DOCKER:-}" ] && command -v dockerd >/dev/null; then
  mkdir -p "$W/docker/data" "$W/docker/exec"
  DH=unix://$W/docker/docker.sock
  dockerd --iptables=false --ip6tables=false --bridge=none --host "$DH" \
    --data-root "$W/docker/data" --exec-root "$W/docker/exec" --pidfile "$W/docker/docker.pid" \
    --containerd-namespace skiff-bench --containerd-plugins-namespace skiff-bench-plugins \
    >"$W/docker/dockerd.log" 2>&1 &
  DPID=$!
  for i in $(seq 300); do docker -H "$DH" version >/dev/null 2>&1 && break; sleep 0.1; done
  hyperfine -w 1 -r "$RUNS" -N --export-json "$W/d.json" \
    --prepare "sh -c 'docker -H $DH rmi -f $REF >/dev/null 2>&1; for d in $W/sk; do [ -e \$d ] && mv \$d $W/trash/\$(basename \$d).\$(date +%s%N); done; true'" \
    -n skiff "$SKIFF --root $W/sk pull -q $REF" \
    -n docker "docker -H $DH pull -q $REF"
  S2=$(jq '.results[] | select(.command=="skiff") | .mean' "$W/d.json")
  D=$(jq '.results[] | select(.command=="docker") | .mean' "$W/d.json")
  echo "skiff pull: ${S2}s   docker pull: ${D}s"
  echo "ratio skiff/docker = $(echo "$S2 $D" | awk '{printf "%.2f", $1/$2}')"
else
  echo "ratio skiff/docker(measured on this machine: 2.69 s) = $(echo "$S" | awk '{printf "%.2f", $1/2.69}')"
fi

# --- disk use for two images sharing 4 layers ---
rm -rf "$W/sk"
"$SKIFF" --root "$W/sk" pull -q "$REF" >/dev/null
B1=$(du -sb "$W/sk" | cut -f1)
"$SKIFF" --root "$W/sk" pull -q "127.0.0.1:$PORT/bench/img:two" >/dev/null
B2=$(du -sb "$W/sk" | cut -f1)
echo "disk: one image $B1 bytes; two images sharing 4 layers $B2 bytes (+$((B2-B1)))"
