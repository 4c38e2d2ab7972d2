#!/usr/bin/env bash
# setup.sh - install what peerboot's tests, benchmarks and demo need on a fresh
# Debian machine (run as root). Services in the installed packages are kept from
# starting: tests start their own peers, inside namespaces they create.
set -euo pipefail
export PATH=$PATH:/usr/local/go/bin
[[ $(id -u) -eq 0 ]] || { echo "setup.sh: run as root" >&2; exit 1; }

pkgs=(
  iproute2 iptables tcpdump tshark        # namespaces, captures, dissection checks
  atftp tftp-hpa curl tftpd-hpa           # real TFTP clients and a peer server
  dnsmasq-base isc-dhcp-server            # plain DHCP server and proxy-DHCP peer
  qemu-system-x86 ovmf ipxe-qemu ipxe     # real firmware guests and iPXE
  busybox-static cpio                     # initramfs for the boot-to-Linux test
  postgresql                              # the second store implementation
  chromium chromium-driver                # the web page test
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  created=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; created=1
  fi
  echo "setup.sh: apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  ((created)) && rm -f /usr/sbin/policy-rc.d
fi
# Keep packaged daemons off: tests start their own copies in namespaces.
for svc in tftpd-hpa isc-dhcp-server postgresql; do
  systemctl disable --now "$svc" >/dev/null 2>&1 || service "$svc" stop >/dev/null 2>&1 || true
done
cd "$(dirname "$0")/.."

# atftpd (a TFTP server with RFC 7440 windowsize, used by the TFTP benchmark as
# a peer) conflicts with tftpd-hpa as a Debian package, so it is unpacked, not
# installed: the benchmark finds it through PEERBOOT_ATFTPD or this path.
peers=/opt/peerboot-peers
if [[ ! -x $peers/atftpd/usr/sbin/atftpd ]]; then
  work=$(mktemp -d /tmp/peerboot-setup.XXXXXX); chmod 755 "$work"
  (cd "$work" && apt-get download -qq atftpd 2>/dev/null) && mkdir -p "$peers/atftpd" \
    && dpkg -x "$work"/atftpd_*.deb "$peers/atftpd" || echo "setup.sh: could not unpack atftpd (only the TFTP benchmark needs it)" >&2
  rm -rf "$work"
fi

# A Debian kernel, unpacked without installing, for the boot-to-Linux tests.
scripts/fetch-test-kernel.sh

go mod download
echo "setup.sh: ready"
