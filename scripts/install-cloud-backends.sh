#!/usr/bin/env bash
# Installs the real cloud servers the provider tests start on 127.0.0.1
# (see ../shared/BACKENDS.md): libvirt's client library, test driver, daemon and qemu (apt), memcached
# for the Swift all-in-one (apt) and Azurite's blob server (npm, cached under
# ~/.cache/reconciler/azurite). The Python side (moto server, Swift, SeaweedFS's `weed`,
# openstacksdk, the Azure SDKs, libvirt-python) comes from pyproject's `clouds` extra.
# Idempotent: a second run installs nothing.
set -euo pipefail

CACHE="${RECONCILER_CACHE:-$HOME/.cache/reconciler}"
AZURITE_VERSION=3.35.0
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

need_pkgs=()
[ -f /usr/include/libvirt/libvirt.h ] || need_pkgs+=(libvirt-dev)
command -v virsh >/dev/null || need_pkgs+=(libvirt-clients)
command -v pkg-config >/dev/null || need_pkgs+=(pkg-config)
command -v memcached >/dev/null || need_pkgs+=(memcached)
# A real hypervisor for the libvirt driver's boot test and the multicloud example.
command -v qemu-system-x86_64 >/dev/null || need_pkgs+=(qemu-system-x86)
# qemu-img converts Images (qcow2, vmdk, vhd) to raw bytes before they are imported.
command -v qemu-img >/dev/null || need_pkgs+=(qemu-utils)
command -v libvirtd >/dev/null || need_pkgs+=(libvirt-daemon libvirt-daemon-driver-qemu)
command -v npm >/dev/null || need_pkgs+=(npm)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${need_pkgs[@]}" >/dev/null
fi

AZ="$CACHE/azurite"
if [ ! -x "$AZ/node_modules/.bin/azurite-blob" ]; then
  mkdir -p "$AZ"
  (cd "$AZ" && npm install --silent --no-audit --no-fund "azurite@$AZURITE_VERSION" >/dev/null)
fi
echo "$AZ/node_modules/.bin/azurite-blob"
