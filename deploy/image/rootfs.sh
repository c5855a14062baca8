#!/usr/bin/env bash
# Lays out the root filesystem of jobify's image: the binary, the shared libraries it links
# (glibc, libgcc_s: the binary is dynamically linked against Debian 12's glibc), the CA
# certificates, a passwd/group naming the non-root user 65532 (`nonroot`), /tmp and the
# user's home. No shell, no package manager, nothing else: the layout of distroless/cc.
#
#   deploy/image/rootfs.sh BINARY ROOTFS
#
# Both ways of building the image use it, so both produce the same layout: the Dockerfile
# (in its Debian 12 builder stage) and deploy/image/build.sh (buildah, no Docker engine), which
# puts the result under deploy/image/Containerfile. Run it on Debian 12 (bookworm), as the
# Dockerfile's builder is.
set -euo pipefail

binary=${1:?usage: rootfs.sh BINARY ROOTFS}
rootfs=${2:?usage: rootfs.sh BINARY ROOTFS}
ca_bundle=/etc/ssl/certs/ca-certificates.crt

[[ -x $binary ]] || { echo "rootfs.sh: $binary is not an executable" >&2; exit 1; }
[[ -f $ca_bundle ]] || { echo "rootfs.sh: $ca_bundle missing (apt-get install ca-certificates)" >&2; exit 1; }

rm -rf "$rootfs"
mkdir -p "$rootfs"/{usr/local/bin,etc/ssl/certs,tmp,home/nonroot}
install -m 0755 "$binary" "$rootfs/usr/local/bin/jobify"

# Every shared object the binary loads, at the path the loader finds it (and the loader itself).
while read -r lib; do
    [[ -n $lib ]] || continue
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
done < <(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)

install -m 0644 "$ca_bundle" "$rootfs$ca_bundle"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' \
    > "$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$rootfs/etc/group"
chmod 1777 "$rootfs/tmp"
chown 65532:65532 "$rootfs/home/nonroot"
chmod 0755 "$rootfs/home/nonroot"
# Fixed times, so the same binary gives the same layer.
find "$rootfs" -exec touch -h -d @0 {} +

echo "rootfs.sh: $(find "$rootfs" -type f | wc -l) files, $(du -sh "$rootfs" | cut -f1), in $rootfs" >&2
