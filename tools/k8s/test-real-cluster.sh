#!/usr/bin/env bash
# The real-cluster tier: builds (or reuses) kube-apiserver, kube-controller-manager and etcd
# with tools/k8s/build-testbins.sh, then runs the ignored real-cluster tests against them.
#
#   tools/k8s/test-real-cluster.sh               # every real-cluster test binary
#   tools/k8s/test-real-cluster.sh -p jobify-k8s --test real_cluster   # cargo test selection
#   tools/k8s/test-real-cluster.sh -p jobify --test real_cluster_bench  # the benchmark's real-cluster
#                                                # mode (prints to target/real-cluster-bench.md)
#
# Each test binary starts one control plane (etcd + kube-apiserver + kube-controller-manager
# + a simulated kubelet) that its tests share; binaries run one after another (cargo's
# default), and tests within one run JOBIFY_REAL_CLUSTER_THREADS at a time (default 4).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

JOBIFY_TESTBINS=$(tools/k8s/build-testbins.sh | tail -n1)
export JOBIFY_TESTBINS
# The tests' kubectl is the one of the same release as the server.
export PATH="$JOBIFY_TESTBINS:$PATH"
echo "real-cluster tier: binaries in $JOBIFY_TESTBINS" >&2
# helm for real_cluster_helm, built once into its own cache (tools/helm/build-helm.sh).
JOBIFY_HELM=$(tools/helm/build-helm.sh | tail -n1)
export JOBIFY_HELM

threads=${JOBIFY_REAL_CLUSTER_THREADS:-4}
if [[ $# -eq 0 ]]; then
    # --workspace, not -p per package: the dependencies then get the features the README's
    # `cargo test --workspace` gave them, so nothing is compiled again (-p would rebuild
    # rustls, kube and the simulators with another feature set: minutes on 2 cores).
    set -- --workspace --test cluster --test real_cluster \
        --test real_cluster_rbac --test real_cluster_watch --test real_cluster_deploy --test real_cluster_helm --test real_cluster_pods \
        --test real_cluster_processes
fi
exec cargo test --locked "$@" -- --ignored --test-threads "$threads"
