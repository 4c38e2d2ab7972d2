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
go mod download
echo "setup.sh: ready"
