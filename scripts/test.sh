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
# fuzz_one runs one target. Go 1.26's fuzz coordinator can report a bare
# "context deadline exceeded" when -fuzztime runs out while a worker is
# mid-call (go.dev/issue/75804, fixed in Go 1.27). That run found nothing: no
# failing input is written and no test failed. Such a run is repeated (at most
# twice); any other failure, or a run that wrote a failing input, fails at once.
fuzz_one() {
  local pkg=$1 target=$2 log attempt
  log=$(mktemp)
  for attempt in 1 2 3; do
    if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1 | tee "$log"; then
      rm -f "$log"; return 0
    fi
    if grep -q 'context deadline exceeded' "$log" &&
      ! grep -qE 'Failing input written|panic:|_test\.go:[0-9]+:|fuzzing process hung' "$log" &&
      [[ $attempt -lt 3 ]]; then
      echo "test.sh: $target stopped on the Go 1.26 fuzz deadline race (nothing found); running it again"
      continue
    fi
    rm -f "$log"; return 1
  done
}
for pkg in $(go list ./fuzz/... ./reliability); do
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "-- $pkg $target"
    fuzz_one "$pkg" "$target"
  done
done
echo "test.sh: all passed"
