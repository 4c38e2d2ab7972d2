#!/usr/bin/env bash
# fetch-test-kernel.sh - put a Debian Linux kernel where the boot-to-Linux tests
# look for it, without installing it: the kernel package is downloaded with
# `apt-get download` and unpacked with `dpkg -x` into a fixed cache directory.
#
# Usage: fetch-test-kernel.sh [DIR]     (run as root; DIR defaults to
#        $PEERBOOT_TEST_KERNEL_DIR or /var/cache/peerboot-test/kernel)
# Env:   PEERBOOT_TEST_KERNEL_PACKAGE  the metapackage whose kernel is used
#        (default linux-image-cloud-amd64: the smallest stock x86-64 kernel,
#        with the serial console and initramfs support built in)
#
# Result: DIR/vmlinuz (the kernel image) and DIR/VERSION (the package it came
# from). Nothing is installed; the machine's own kernel and /boot are untouched.
# Idempotent: a kernel already unpacked in DIR is kept.
set -euo pipefail

dir=${1:-${PEERBOOT_TEST_KERNEL_DIR:-/var/cache/peerboot-test/kernel}}
meta=${PEERBOOT_TEST_KERNEL_PACKAGE:-linux-image-cloud-amd64}

if [[ -s $dir/vmlinuz && -s $dir/VERSION ]]; then
  echo "fetch-test-kernel.sh: $(cat "$dir/VERSION") already in $dir"
  exit 0
fi

# The metapackage depends on exactly one versioned kernel package.
resolve() { apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}'; }
pkg=$(resolve)
if [[ -z $pkg ]]; then
  apt-get update -qq
  pkg=$(resolve)
fi
[[ -n $pkg ]] || { echo "fetch-test-kernel.sh: no kernel package behind $meta" >&2; exit 1; }

work=$(mktemp -d /tmp/fetch-test-kernel.XXXXXX); chmod 755 "$work"  # apt-get download runs as _apt
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -qq "$pkg")
deb=$(find "$work" -maxdepth 1 -name '*.deb' -print -quit)
[[ -n $deb ]] || { echo "fetch-test-kernel.sh: apt-get download $pkg gave no .deb" >&2; exit 1; }
dpkg -x "$deb" "$work/root"
kernel=$(find "$work/root/boot" -maxdepth 1 -name 'vmlinuz-*' -print -quit)
[[ -n $kernel ]] || { echo "fetch-test-kernel.sh: no /boot/vmlinuz-* in $pkg" >&2; exit 1; }

mkdir -p "$dir"
# Replace atomically so a half-written kernel is never seen.
cp "$kernel" "$dir/vmlinuz.tmp"
mv "$dir/vmlinuz.tmp" "$dir/vmlinuz"
echo "$pkg $(basename "$kernel")" >"$dir/VERSION.tmp"
mv "$dir/VERSION.tmp" "$dir/VERSION"
echo "fetch-test-kernel.sh: $pkg unpacked to $dir ($(stat -c %s "$dir/vmlinuz") bytes)"
