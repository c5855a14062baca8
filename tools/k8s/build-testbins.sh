#!/usr/bin/env bash
# Builds the real-cluster test binaries (kube-apiserver, kube-controller-manager, kubectl and
# etcd) from the Go module proxy into a cache directory keyed by versions. kubectl is built
# too, of the same release, because a machine's own may be outside the supported skew of one
# minor version (this machine kind carries v1.32 against a v1.37 server). A no-op when that directory is complete. The last line on stdout is the
# directory: pass it to the tests as JOBIFY_TESTBINS.
#
#   JOBIFY_TESTBINS=$(tools/k8s/build-testbins.sh | tail -n1) cargo test ... -- --ignored
#
# Environment:
#   JOBIFY_TESTBINS_CACHE  cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/jobify/k8s-testbins)
#   GOMODCACHE, GOCACHE    honoured as usual by go
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tools=$(dirname "$here")

export CGO_ENABLED=0 GOTOOLCHAIN=local GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false"

# The versions come from the committed go.mod files, so the cache key cannot drift from them.
k8s_version=$(cd "$tools/k8s" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
etcd_version=$(cd "$tools/etcd" && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
go_version=$(go env GOVERSION)

root=${JOBIFY_TESTBINS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/jobify/k8s-testbins}
# `layout` names what the directory holds; bump it when that changes (2: kubectl added).
layout=2
out="$root/k8s-${k8s_version}_etcd-${etcd_version}_${go_version}_layout${layout}"
stamp="$out/.complete"

if [[ -f $stamp ]]; then
    echo "$out"
    exit 0
fi

mkdir -p "$root"
exec 9>"$out.lock"
flock 9
# Someone else may have finished while we waited for the lock.
if [[ -f $stamp ]]; then
    echo "$out"
    exit 0
fi

# Build into a scratch directory and rename it into place, so a half-built directory is never
# taken for a complete one.
tmp="$out.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT

minor=${k8s_version#v1.}
minor=${minor%%.*}
# The release date the proxy records, as the build date; fixed, so rebuilds are reproducible.
build_date=$(cd "$tools/k8s" && go mod download -json "k8s.io/kubernetes@$k8s_version" |
    sed -n 's/^[[:space:]]*"Info": "\(.*\)",*$/\1/p' | xargs cat |
    sed -n 's/.*"Time":"\([^"]*\)".*/\1/p')
build_date=${build_date:-1970-01-01T00:00:00Z}

ldflags="-s -w"
for kv in "gitVersion=$k8s_version" gitMajor=1 "gitMinor=$minor" gitTreeState=clean "buildDate=$build_date"; do
    ldflags="$ldflags -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
done

k8s_cmds=(k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
    k8s.io/kubernetes/cmd/kubectl)

echo "building ${k8s_cmds[*]##*/} ($k8s_version) and etcd ($etcd_version) with $go_version into $out" >&2
start=$SECONDS
(cd "$tools/k8s" && go mod download)
(cd "$tools/etcd" && go mod download)
echo "modules downloaded in $((SECONDS - start)) s" >&2

(cd "$tools/k8s" && go build -trimpath -tags=selinux,notest -ldflags="$ldflags" -o "$tmp/" "${k8s_cmds[@]}")
(cd "$tools/etcd" && go build -trimpath -installsuffix=cgo \
    -ldflags="-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$etcd_version" -o "$tmp/etcd" go.etcd.io/etcd/server/v3)
echo "built in $((SECONDS - start)) s" >&2

"$tmp/kube-apiserver" --version >&2
"$tmp/kube-controller-manager" --version >&2
"$tmp/kubectl" version --client >&2
"$tmp/etcd" --version >&2

rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
touch "$stamp"
echo "$out"
