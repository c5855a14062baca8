//! Kubernetes API simulator: jobs, pods, events and leases, with a simulated job controller and kubelet.
