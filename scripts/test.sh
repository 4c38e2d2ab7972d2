#!/usr/bin/env bash
# test.sh - the whole peerboot test suite (run as root after scripts/setup.sh):
# formatting and vet, every package's tests (real sockets, namespaces, peers),
# and a short run of every fuzz target.
set -euo pipefail
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "test.sh: run as root (tests build network namespaces)" >&2; exit 1; }

echo "== gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [[ -n $bad ]]; then echo "gofmt would change:"; echo "$bad"; exit 1; fi
echo "== go vet"
go vet ./...
echo "== go test"
go test -count=1 -timeout 40m ./...
echo "== real firmware boots Linux through Central, three agents and a relay (build tag osboot)"
go test -tags osboot -count=1 -timeout 20m -run 'TestCentralSiteBootsLinux|TestRelayedSnoopingSiteBootsLinux' ./internal/osboot
echo "== fuzz (${FUZZTIME:=10s} per target)"
for pkg in $(go list ./fuzz/... ./reliability); do
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "-- $pkg $target"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg"
  done
done
echo "test.sh: all passed"
