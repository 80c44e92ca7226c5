#!/usr/bin/env bash
# Installs etcd and builds kube-apiserver from Debian's Kubernetes source, for the
# operator's integration tests (no kind/k3s can be downloaded here; see
# ../shared/BACKENDS.md). The binary is cached under ~/.cache/reconciler/kube, so
# only the first run pays the ~4 minute build. Prints the binary's path at the end.
set -euo pipefail

CACHE="${RECONCILER_KUBE_CACHE:-$HOME/.cache/reconciler/kube}"
BIN="$CACHE/bin/kube-apiserver"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

need_pkgs=()
command -v etcd >/dev/null || need_pkgs+=(etcd-server)
command -v kubectl >/dev/null || need_pkgs+=(kubernetes-client)
if [ ! -x "$BIN" ]; then
  command -v go >/dev/null || need_pkgs+=(golang-go)
  command -v rsync >/dev/null || need_pkgs+=(rsync)
  [ -d /usr/share/gocode/src/github.com/modern-go/reflect2 ] || need_pkgs+=(golang-github-modern-go-reflect2-dev)
  [ -d /usr/share/gocode/src/github.com/json-iterator/go ] || need_pkgs+=(golang-github-json-iterator-go-dev)
fi
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi

# Debian source package: enable deb-src once, fetch the original tarball.
if ! grep -rqs "deb-src" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
      | $SUDO tee /etc/apt/sources.list.d/debian-src.sources >/dev/null
  else
    grep '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' \
      | $SUDO tee /etc/apt/sources.list.d/debian-src.list >/dev/null
  fi
fi
$SUDO apt-get update -qq

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
apt-get source --download-only kubernetes >/dev/null 2>&1
TARBALL="$(ls kubernetes_*.orig.tar.gz | head -1)"
mkdir src
tar -xzf "$TARBALL" -C src --strip-components=1
cd src

# Go 1.19 crashes the vendored reflect2 v1.0.1 on the first custom-resource create;
# Debian's packaged copies work.
for pkg in github.com/modern-go/reflect2 github.com/json-iterator/go; do
  rm -rf "vendor/$pkg"
  cp -r "/usr/share/gocode/src/$pkg" "vendor/$pkg"
  rm -f "vendor/$pkg/go.mod" "vendor/$pkg/go.sum"
done
find vendor/github.com/json-iterator/go -name '*_test.go' -delete

CGO_ENABLED=0 HOME="$WORK/home" GOCACHE="$WORK/gocache" make WHAT=cmd/kube-apiserver >"$WORK/build.log" 2>&1 \
  || { tail -50 "$WORK/build.log"; exit 1; }
mkdir -p "$CACHE/bin"
cp _output/bin/kube-apiserver "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
echo "$BIN"
