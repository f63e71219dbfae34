#!/usr/bin/env python3
"""Runs rendered Kubernetes manifests on one host with `podman kube play` (podman 4.3).

podman is not a cluster: no scheduler, no Services, no StatefulSets, no pod IPs, no downward
API for status.podIP, no projected volumes, and podman 4.3 writes a Secret's `data` to files
without base64-decoding it. This script does what a cluster would have done before the pods
start, so that the manifests' own pod specs, ConfigMaps and configuration run unchanged:

- each replica of a Deployment or StatefulSet becomes a Pod named as a StatefulSet names
  them (<name>-0, <name>-1, …) on the host's network with its own loopback address as its
  pod IP (what a cluster gives every pod), assigned in the order the workloads appear;
- env from fieldRef (metadata.name, status.podIP), configMapKeyRef and secretKeyRef becomes
  the value; $(VAR) in command and args is expanded from the env, as the kubelet does;
- a volumeClaimTemplate becomes a named volume <claim>-<pod>; an emptyDir one named <vol>-<pod>;
- a projected volume of per-pod Secrets becomes the pod's own Secret (its node key), and
  Secret volumes are not optional (podman 4.3 skips optional ones even when they exist);
- probes are dropped (podman runs them with systemd timers, which this host does not have),
  and so are container ports (podman refuses port mappings on the host's network);
- Services, PodDisruptionBudgets and Namespaces are left out: they are checked by the schema
  test only.

  play.py pods RENDERED.yaml --secrets SECRETS.yaml [--select NAME]… [--env NAME=VALUE]…
          [--image OLD=NEW]… [--replicas NAME=N]… [--subnet 127.0.1]
                                                     # podman kube play input on stdout
  play.py addresses RENDERED.yaml [--replicas NAME=N]… [--subnet 127.0.1]
                                                     # "pod address" lines
  play.py podman-secrets SECRETS.yaml DIR            # one file per Secret for `podman secret
                                                     # create NAME FILE`, data decoded (4.3)
"""

import argparse
import base64
import copy
import os
import re
import sys

import yaml

WORKLOADS = ("Deployment", "StatefulSet")
CLUSTER_ONLY = ("Service", "PodDisruptionBudget", "Namespace")


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


SCALE = {}


def replicas(doc):
    name = doc["metadata"]["name"]
    count = int(SCALE.get(name, doc["spec"].get("replicas", 1)))
    return [f"{name}-{i}" for i in range(count)]


def addresses(docs, subnet):
    pods = [pod for doc in docs if doc["kind"] in WORKLOADS for pod in replicas(doc)]
    return {pod: f"{subnet}.{i + 1}" for i, pod in enumerate(pods)}


def secret_value(secrets, name, key):
    for secret in secrets:
        if secret["metadata"]["name"] == name:
            if key in secret.get("stringData", {}):
                return secret["stringData"][key]
            return base64.b64decode(secret["data"][key]).decode()
    sys.exit(f"error: Secret {name} (key {key}) is not in the secrets file")


def config_value(docs, name, key):
    for doc in docs:
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == name:
            return doc["data"][key]
    sys.exit(f"error: ConfigMap {name} (key {key}) is not in the manifests")


def resolve_env(container, pod, address, docs, secrets, overrides):
    env = []
    for var in container.get("env", []):
        source = var.get("valueFrom")
        if var["name"] in overrides:
            value = overrides[var["name"]]
        elif source is None:
            value = var.get("value", "")
        elif "fieldRef" in source:
            field = source["fieldRef"]["fieldPath"]
            value = {"metadata.name": pod, "status.podIP": address}.get(field)
            if value is None:
                sys.exit(f"error: {pod}: fieldRef {field} is not emulated")
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            value = config_value(docs, ref["name"], ref["key"])
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            value = secret_value(secrets, ref["name"], ref["key"])
        else:
            sys.exit(f"error: {pod}: env {var['name']}: unsupported valueFrom")
        env.append({"name": var["name"], "value": str(value)})
    container["env"] = env
    values = {v["name"]: v["value"] for v in env}
    expand = lambda s: re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: values.get(m.group(1), m.group(0)), s)
    for field in ("command", "args"):
        if field in container:
            container[field] = [expand(a) for a in container[field]]


def pod_for(doc, pod, address, docs, secrets, options):
    spec = copy.deepcopy(doc["spec"]["template"]["spec"])
    spec["hostNetwork"] = True
    spec.pop("affinity", None)
    mounts_moved = {}
    volumes = []
    for volume in spec.get("volumes", []):
        if "emptyDir" in volume:
            volume = {"name": volume["name"], "persistentVolumeClaim": {"claimName": f"{volume['name']}-{pod}"}}
        elif "projected" in volume:
            own = [s["secret"] for s in volume["projected"]["sources"] if s.get("secret", {}).get("name", "").startswith(f"{pod}-")]
            if len(own) != 1:
                sys.exit(f"error: {pod}: projected volume {volume['name']} has no Secret of this pod's own")
            volume = {"name": volume["name"], "secret": {"secretName": own[0]["name"], "optional": False}}
            mounts_moved[volume["name"]] = pod  # items put files under <pod>/
        elif "secret" in volume:
            # podman 4.3 dereferences a missing `optional` and skips an optional volume even
            # when its Secret exists; the play creates every Secret first.
            volume["secret"]["optional"] = False
            volume["secret"].pop("defaultMode", None)
        volumes.append(volume)
    for claim in doc["spec"].get("volumeClaimTemplates", []):
        name = claim["metadata"]["name"]
        volumes.append({"name": name, "persistentVolumeClaim": {"claimName": f"{name}-{pod}"}})
    spec["volumes"] = volumes
    for container in spec["containers"]:
        container.pop("readinessProbe", None)
        container.pop("livenessProbe", None)
        container.pop("resources", None)
        container.pop("ports", None)  # on the host's network podman refuses port mappings
        image = container["image"]
        container["image"] = options.images.get(image.rsplit(":", 1)[0], options.images.get(image, image))
        resolve_env(container, pod, address, docs, secrets, options.env)
        for mount in container.get("volumeMounts", []):
            if mount["name"] in mounts_moved:
                mount["mountPath"] = f"{mount['mountPath']}/{mounts_moved[mount['name']]}"
    labels = dict(doc["spec"]["template"]["metadata"].get("labels", {}))
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "labels": labels}, "spec": spec}


def pairs(values):
    out = {}
    for value in values or []:
        key, _, rest = value.partition("=")
        out[key] = rest
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["pods", "addresses", "podman-secrets"])
    parser.add_argument("input")
    parser.add_argument("out", nargs="?")
    parser.add_argument("--secrets")
    parser.add_argument("--select", action="append")
    parser.add_argument("--env", action="append")
    parser.add_argument("--image", action="append")
    parser.add_argument("--replicas", action="append", help="NAME=N: scale a workload")
    parser.add_argument("--subnet", default="127.0.1")
    options = parser.parse_args()
    SCALE.update(pairs(options.replicas))
    options.env, options.images = pairs(options.env), pairs(options.image)
    docs = load(options.input)

    if options.command == "podman-secrets":
        os.makedirs(options.out, exist_ok=True)
        for secret in docs:
            data = {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}
            data.update(secret.get("stringData", {}))
            plain = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret["metadata"]["name"]}, "data": data}
            with open(os.path.join(options.out, secret["metadata"]["name"] + ".yaml"), "w") as f:
                yaml.safe_dump(plain, f)
            print(secret["metadata"]["name"])
        return

    assigned = addresses(docs, options.subnet)
    if options.command == "addresses":
        for pod, address in assigned.items():
            print(pod, address)
        return

    secrets = load(options.secrets) if options.secrets else []
    out = [d for d in docs if d["kind"] == "ConfigMap"]
    for doc in docs:
        if doc["kind"] in CLUSTER_ONLY:
            print(f"play: {doc['kind']}/{doc['metadata']['name']}: cluster-only, schema-checked", file=sys.stderr)
        elif doc["kind"] in WORKLOADS and (not options.select or doc["metadata"]["name"] in options.select):
            out.extend(pod_for(doc, pod, assigned[pod], docs, secrets, options) for pod in replicas(doc))
    for doc in out:
        doc.get("metadata", {}).pop("namespace", None)
    yaml.safe_dump_all(out, sys.stdout, sort_keys=False)


if __name__ == "__main__":
    main()
