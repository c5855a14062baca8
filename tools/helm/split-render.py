#!/usr/bin/env python3
"""Splits a `helm template` render into the objects of Kubernetes' own APIs (NATIVE.yaml, for
kubernetes-validate) and the Prometheus Operator's (monitoring.coreos.com: PodMonitor,
ServiceMonitor, PrometheusRule), which no schema here covers: kubernetes-validate carries only
Kubernetes' schemas and the Operator's CRDs cannot be fetched. Those are checked here instead,
by hand, for what the chart controls: the fields the Operator requires, a selector that selects
the chart's pods, and rules that each have a name and an expression.

    split-render.py RENDER.yaml NATIVE.yaml
"""
import sys

import yaml

OPERATOR = "monitoring.coreos.com/v1"


def fail(msg):
    sys.exit(f"split-render.py: {msg}")


def check_operator(obj):
    kind, name = obj["kind"], obj["metadata"]["name"]
    spec = obj.get("spec") or fail(f"{kind}/{name} has no spec")
    if kind in ("PodMonitor", "ServiceMonitor"):
        labels = spec.get("selector", {}).get("matchLabels", {})
        if labels.get("app.kubernetes.io/component") != "controller":
            fail(f"{kind}/{name} does not select the controller's pods: {labels}")
        endpoints = spec.get("podMetricsEndpoints" if kind == "PodMonitor" else "endpoints")
        if not endpoints or not all(e.get("port") and e.get("path") == "/metrics" for e in endpoints):
            fail(f"{kind}/{name} endpoints {endpoints}")
    elif kind == "PrometheusRule":
        groups = spec.get("groups") or fail(f"{kind}/{name} has no groups")
        for group in groups:
            for rule in group.get("rules") or fail(f"group {group.get('name')} has no rules"):
                if not (rule.get("alert") or rule.get("record")) or not rule.get("expr"):
                    fail(f"{kind}/{name}: a rule without a name or an expr: {rule}")
                extra = set(rule) - {"alert", "record", "expr", "for", "labels", "annotations", "keep_firing_for"}
                if extra:
                    fail(f"{kind}/{name}: unknown rule fields {extra}")
    else:
        fail(f"unexpected {OPERATOR} kind {kind}")


def main():
    src, native_path = sys.argv[1:3]
    with open(src) as f:
        objects = [o for o in yaml.safe_load_all(f) if o]
    native, operator = [], []
    for obj in objects:
        (operator if obj.get("apiVersion") == OPERATOR else native).append(obj)
    for obj in operator:
        check_operator(obj)
    with open(native_path, "w") as f:
        yaml.safe_dump_all(native, f, sort_keys=False)
    kinds = lambda objs: ", ".join(sorted(o["kind"] for o in objs)) or "none"
    print(f"{src}: {len(native)} Kubernetes objects ({kinds(native)}); "
          f"Prometheus Operator objects checked by hand: {kinds(operator)}")


if __name__ == "__main__":
    main()
