#!/usr/bin/env bash
# Builds jobify's image without a Docker engine: the release binary, the root filesystem of
# rootfs.sh, then buildah (Debian's package, storage driver vfs: no overlay or fuse needed) from
# Containerfile. Writes the image to buildah's local storage as $JOBIFY_IMAGE and, as an OCI
# image layout, to target/image/oci (copy it to a registry with `skopeo copy oci:... docker://...`).
# The last line on stdout is the image name.
#
#   deploy/image/build.sh                     # cargo build --release, then the image
#   JOBIFY_BINARY=target/debug/jobify deploy/image/build.sh   # an already built binary
#
# Environment: JOBIFY_IMAGE (default localhost/jobify:<version>), JOBIFY_BINARY,
# JOBIFY_CARGO_FEATURES (e.g. `demo`, for an image that can run `jobify demo`; the product
# image, like the Dockerfile's, has none).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

command -v buildah >/dev/null || { echo "build.sh: buildah is missing (apt-get install buildah)" >&2; exit 1; }

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
image=${JOBIFY_IMAGE:-localhost/jobify:$version}
binary=${JOBIFY_BINARY:-}
if [[ -z $binary ]]; then
    start=$SECONDS
    cargo build --release -p jobify --locked ${JOBIFY_CARGO_FEATURES:+--features "$JOBIFY_CARGO_FEATURES"} >&2
    echo "build.sh: release binary built in $((SECONDS - start)) s" >&2
    binary=target/release/jobify
fi

work=target/image
mkdir -p "$work"
deploy/image/rootfs.sh "$binary" "$work/rootfs"
cp deploy/image/Containerfile "$work/Containerfile"

buildah=(buildah --storage-driver vfs)
"${buildah[@]}" bud --quiet --timestamp 0 --layers=false \
    --label "org.opencontainers.image.title=jobify" \
    --label "org.opencontainers.image.version=$version" \
    -f "$work/Containerfile" -t "$image" "$work" >&2
rm -rf "$work/oci"
"${buildah[@]}" push --quiet "$image" "oci:$work/oci:$version" >&2
echo "build.sh: $image, OCI layout in $work/oci ($(du -sh "$work/oci" | cut -f1))" >&2
echo "$image"
