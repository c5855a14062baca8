#!/usr/bin/env bash
# Builds helm from the Go module proxy into a cache directory keyed by helm's version (taken
# from tools/helm/go.mod, so the key cannot drift from the pin) and Go's. A no-op when that
# directory is complete. The last line on stdout is the helm binary's path:
#
#   helm=$(tools/helm/build-helm.sh | tail -n1); "$helm" version
#
# The same approach as tools/k8s/build-testbins.sh: a lock, a scratch directory renamed into
# place, and a stamp file written last.
#
# Environment:
#   JOBIFY_HELM_CACHE   cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/jobify/helm)
#   GOMODCACHE, GOCACHE honoured as usual by go
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

export CGO_ENABLED=0 GOTOOLCHAIN=local GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false"

helm_version=$(cd "$here" && go list -m -f '{{.Version}}' helm.sh/helm/v4)
go_version=$(go env GOVERSION)

root=${JOBIFY_HELM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/jobify/helm}
# `layout` names what the directory holds; bump it when that changes.
layout=1
out="$root/helm-${helm_version}_${go_version}_layout${layout}"
stamp="$out/.complete"

if [[ -f $stamp ]]; then
    echo "$out/helm"
    exit 0
fi

mkdir -p "$root"
exec 9>"$out.lock"
flock 9
if [[ -f $stamp ]]; then
    echo "$out/helm"
    exit 0
fi

tmp="$out.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT

echo "building helm $helm_version with $go_version into $out" >&2
start=$SECONDS
(cd "$here" && go mod download)
echo "modules downloaded in $((SECONDS - start)) s" >&2
ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$helm_version -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
(cd "$here" && go build -trimpath -ldflags="$ldflags" -o "$tmp/helm" helm.sh/helm/v4/cmd/helm)
echo "built in $((SECONDS - start)) s" >&2
"$tmp/helm" version >&2

rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
touch "$stamp"
echo "$out/helm"
