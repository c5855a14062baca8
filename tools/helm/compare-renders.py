#!/usr/bin/env python3
"""Compares the objects of two YAML streams: `helm template` of deploy/helm/jobify and
`kubectl kustomize examples/deploy`. Exit 0 when they are the same objects, else 1 with a diff.

What is set aside, and only that:
  * the labels only Helm sets (helm.sh/chart, app.kubernetes.io/managed-by, .../instance,
    .../version), wherever a label map or selector carries them;
  * the pod template's `checksum/config` annotation (Helm's way to roll on a config change)
    and the content hash kustomize appends to the ConfigMap's name (kustomize's way), in the
    ConfigMap's name and in the Deployment's reference to it.

    compare-renders.py HELM.yaml KUSTOMIZE.yaml
"""
import difflib
import re
import sys

import yaml

HELM_LABELS = {
    "helm.sh/chart",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
}
CONFIG_MAP_HASH = re.compile(r"^(?P<base>.+-config)-[a-z0-9]{10}$")


def strip_helm_labels(value):
    if isinstance(value, dict):
        return {k: strip_helm_labels(v) for k, v in value.items() if k not in HELM_LABELS}
    if isinstance(value, list):
        return [strip_helm_labels(v) for v in value]
    return value


def normalise(obj):
    obj = strip_helm_labels(obj)
    meta = obj.get("metadata", {})
    if obj.get("kind") == "ConfigMap":
        m = CONFIG_MAP_HASH.match(meta.get("name", ""))
        if m:
            meta["name"] = m.group("base")
    if obj.get("kind") == "Deployment":
        template = obj["spec"]["template"]
        annotations = template.get("metadata", {}).get("annotations", {})
        annotations.pop("checksum/config", None)
        if not annotations:
            template["metadata"].pop("annotations", None)
        for volume in template["spec"].get("volumes", []):
            cm = volume.get("configMap")
            if cm:
                m = CONFIG_MAP_HASH.match(cm.get("name", ""))
                if m:
                    cm["name"] = m.group("base")
    return obj


def load(path):
    with open(path) as f:
        objects = [o for o in yaml.safe_load_all(f) if o]
    keyed = {}
    for o in objects:
        o = normalise(o)
        key = (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])
        if key in keyed:
            sys.exit(f"{path}: {key} twice")
        keyed[key] = o
    return keyed


def main():
    helm_path, kustomize_path = sys.argv[1:3]
    helm, kustomize = load(helm_path), load(kustomize_path)
    failed = False
    for key in sorted(set(helm) | set(kustomize)):
        if key not in helm:
            print(f"only in kustomize: {key}")
            failed = True
        elif key not in kustomize:
            print(f"only in helm: {key}")
            failed = True
        elif helm[key] != kustomize[key]:
            failed = True
            a = yaml.safe_dump(kustomize[key], sort_keys=True).splitlines()
            b = yaml.safe_dump(helm[key], sort_keys=True).splitlines()
            print(f"differs: {key}")
            print("\n".join(difflib.unified_diff(a, b, "kustomize", "helm", lineterm="")))
    if failed:
        print("the chart and the kustomize base render different objects", file=sys.stderr)
        return 1
    print(f"helm and kustomize render the same {len(helm)} objects: "
          + ", ".join(f"{k}/{n}" for k, _, n in sorted(helm)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
