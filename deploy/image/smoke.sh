#!/usr/bin/env bash
# Runs jobify's image and checks it as a cluster would run it: `jobify --version` and
# `jobify demo` succeed in a container with a read-only root, no capabilities, no network, as
# uid 65532 (read from the running process, not only from the image's config), and the image
# holds no shell.
#
#   deploy/image/smoke.sh IMAGE        # IMAGE as deploy/image/build.sh printed it
#
# Runs with podman and runc (Debian's packages), storage driver vfs. On this machine kind the
# cgroups are a v1/v2 hybrid that crun refuses, and podman's default ulimits cannot be set, so
# this uses runc and a containers.conf without default ulimits. If no container can be started
# at all, it says so loudly and checks only the image (exit 0); a jobify failure inside a
# started container fails it.
set -euo pipefail

image=${1:?usage: smoke.sh IMAGE}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=$root/target/image
mkdir -p "$work"

conf=$work/containers.conf
printf '[containers]\ndefault_ulimits = []\n' > "$conf"
export CONTAINERS_CONF=$conf
podman=(podman --storage-driver vfs)
if command -v runc >/dev/null; then podman+=(--runtime runc); fi
# How the chart runs it: no privilege escalation, all capabilities dropped, read-only root.
confine=(--read-only --cap-drop ALL --security-opt no-new-privileges --network none)
run=(run --rm "${confine[@]}")

fail() { echo "smoke.sh: FAIL: $*" >&2; exit 1; }

echo "--- image config"
user=$("${podman[@]}" image inspect --format '{{.Config.User}}' "$image")
entrypoint=$("${podman[@]}" image inspect --format '{{json .Config.Entrypoint}}' "$image")
echo "user $user, entrypoint $entrypoint"
[[ $user == 65532:65532 ]] || fail "the image's user is '$user', not 65532:65532"
[[ $entrypoint == '["/usr/local/bin/jobify"]' ]] || fail "entrypoint $entrypoint"

echo "--- image filesystem"
ctr=$("${podman[@]}" create "$image")
files=$("${podman[@]}" export "$ctr" | tar -t | sort)
"${podman[@]}" rm -f "$ctr" >/dev/null
echo "$files" | sed 's/^/  /'
for shell in bin/sh bin/bash bin/dash bin/busybox usr/bin/sh usr/bin/bash; do
    if grep -qx "$shell" <<<"$files"; then fail "the image holds a shell: /$shell"; fi
done
echo "no shell in the image"

echo "--- run: jobify --version"
if ! out=$("${podman[@]}" "${run[@]}" "$image" --version 2>&1); then
    if grep -qiE 'oci runtime|crun:|runc:|cgroup|setrlimit|permission denied' <<<"$out"; then
        echo "!!! smoke.sh: NO CONTAINER COULD BE STARTED ON THIS MACHINE: the image was built and" >&2
        echo "!!! inspected, but NOT run. The runtime said:" >&2
        echo "$out" | sed 's/^/!!!   /' >&2
        exit 0
    fi
    fail "jobify --version: $out"
fi
echo "$out"
grep -q '^jobify ' <<<"$out" || fail "--version printed '$out'"

echo "--- run: no shell to run"
if "${podman[@]}" "${run[@]}" --entrypoint /bin/sh "$image" -c true >/dev/null 2>&1; then
    fail "/bin/sh ran in the image"
fi
echo "/bin/sh cannot be started"

echo "--- run: jobify demo, as uid 65532"
help=$("${podman[@]}" "${run[@]}" "$image" --help 2>&1 || true)
if ! grep -qE '^ +demo ' <<<"$help"; then
    echo "!!! smoke.sh: this binary has no \`demo\` subcommand (built without the demo feature, as" >&2
    echo "!!! the product image is): the demo and the uid of a running process were NOT checked." >&2
    echo "!!! Build the image with JOBIFY_CARGO_FEATURES=demo (or a demo binary) to check them." >&2
    exit 1
fi
ctr=$("${podman[@]}" run -d "${confine[@]}" "$image" demo)
uid=""
for _ in $(seq 1 100); do
    pid=$("${podman[@]}" inspect --format '{{.State.Pid}}' "$ctr" 2>/dev/null || echo 0)
    if [[ $pid != 0 && -r /proc/$pid/status ]]; then
        uid=$(awk '/^Uid:/ { print $2 "/" $3 }' "/proc/$pid/status")
        gid=$(awk '/^Gid:/ { print $2 "/" $3 }' "/proc/$pid/status")
        break
    fi
    sleep 0.1
done
status=$("${podman[@]}" wait "$ctr")
"${podman[@]}" logs "$ctr" 2>&1 | tail -n 3
"${podman[@]}" rm -f "$ctr" >/dev/null
[[ $status == 0 ]] || fail "jobify demo exited $status"
[[ -n $uid ]] || fail "the demo's process was gone before its uid could be read"
echo "the demo's process ran as uid $uid, gid $gid (real/effective)"
[[ $uid == 65532/65532 && $gid == 65532/65532 ]] || fail "the process ran as uid $uid gid $gid, not 65532"
echo "smoke.sh: the image runs as non-root, without a shell: ok"
