"""deploy/k8s validated offline: `kubectl kustomize` (works without a cluster in kubectl 1.20 and
later; `kubectl apply --dry-run=client` needs an API server for discovery, so it cannot run in CI)
renders every object, then structural checks: selectors match pod labels, /health probes on a
declared port, each engine class requests its vendor's device-plugin resource, a headless Service
per engine Deployment, the router names every engine Service, the pool file in the ConfigMap is
accepted by `luzao pool plan`, and every flag in the containers' args exists in `luzao --help`.

Environment: LUZAO_KUBECTL, the kubectl to use (default: kubectl on PATH).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is needed (scripts/setup-deps.sh installs it)")

from conftest import REPO, run_cli  # noqa: E402

K8S = REPO / "deploy" / "k8s"
NAMESPACE = "luzao"
ENGINE_RESOURCES = {  # device class -> the vendor device plugin's resource (None: plain CPU)
    "cpu": None,
    "nvidia": "nvidia.com/gpu",
    "ascend": "huawei.com/Ascend910",
    "cambricon": "cambricon.com/mlu",
    "mthreads": "mthreads.com/vgpu",
}


def load_files() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def key(doc: dict) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


@pytest.fixture(scope="module")
def objects() -> dict[tuple[str, str], dict]:
    docs = load_files()
    keys = [key(d) for d in docs]
    assert len(keys) == len(set(keys)), "duplicate objects"
    return {key(d): d for d in docs}


def by_kind(objects, kind):
    return [d for (k, _), d in objects.items() if k == kind]


def test_kustomization_lists_every_manifest():
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    present = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == present


def test_kubectl_renders_offline(objects):
    kubectl = os.environ.get("LUZAO_KUBECTL") or shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl not found (Debian: apt-get install kubernetes-client); the structural "
                    "checks in this file still ran")
    env = dict(os.environ, KUBECONFIG=os.devnull)  # no cluster: must not be needed
    proc = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    rendered = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert sorted(key(d) for d in rendered) == sorted(objects)
    for doc in rendered:
        assert doc == objects[key(doc)], f"kubectl renders {key(doc)} differently"


def test_every_object_is_namespaced_and_labelled(objects):
    assert ("Namespace", NAMESPACE) in objects
    for (kind, name), doc in objects.items():
        assert doc.get("apiVersion"), (kind, name)
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name), name
        if kind != "Namespace":
            assert doc["metadata"].get("namespace") == NAMESPACE, (kind, name)
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "luzao", (kind, name)


def containers(deployment):
    return deployment["spec"]["template"]["spec"]["containers"]


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_deployments_select_their_pods_and_probe_health(objects):
    deployments = by_kind(objects, "Deployment")
    assert len(deployments) == 1 + len(ENGINE_RESOURCES)
    for d in deployments:
        assert d["apiVersion"] == "apps/v1"
        pod_labels = d["spec"]["template"]["metadata"]["labels"]
        assert selects(d["spec"]["selector"]["matchLabels"], pod_labels), d["metadata"]["name"]
        for c in containers(d):
            assert c["image"]
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            for probe in ("readinessProbe", "livenessProbe"):
                get = c[probe]["httpGet"]
                assert get["path"] == "/health", (d["metadata"]["name"], probe)
                assert get["port"] in ports or get["port"] in ports.values()
            volumes = {v["name"] for v in d["spec"]["template"]["spec"].get("volumes", [])}
            for m in c.get("volumeMounts", []):
                assert m["name"] in volumes
        for v in d["spec"]["template"]["spec"].get("volumes", []):
            if "persistentVolumeClaim" in v:
                assert ("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"]) in objects
            if "configMap" in v:
                assert ("ConfigMap", v["configMap"]["name"]) in objects


def engine_deployments(objects):
    out = {}
    for d in by_kind(objects, "Deployment"):
        cls = d["spec"]["template"]["metadata"]["labels"].get("luzao.dev/device-class")
        if cls:
            out[cls] = d
    return out


def test_each_engine_class_requests_its_vendor_resource(objects):
    engines = engine_deployments(objects)
    assert set(engines) == set(ENGINE_RESOURCES)
    for cls, resource in ENGINE_RESOURCES.items():
        (c,) = containers(engines[cls])
        limits = c["resources"].get("limits", {})
        requests = c["resources"].get("requests", {})
        extended = {k for k in {**limits, **requests} if "/" in k}
        if resource is None:
            assert not extended, cls
            assert "--device=cpu" in c["args"]
            continue
        assert extended == {resource}, cls
        # Extended resources: whole numbers, and requests equal to limits when both are given.
        assert isinstance(limits[resource], int) and limits[resource] >= 1
        assert requests.get(resource, limits[resource]) == limits[resource]
        tolerations = engines[cls]["spec"]["template"]["spec"].get("tolerations", [])
        assert any(t["key"] == resource for t in tolerations), cls
        assert any(a.startswith("--device=") and a != "--device=cpu" for a in c["args"]), cls


def test_headless_service_per_engine_and_router_names_them(objects):
    services = by_kind(objects, "Service")
    engines = engine_deployments(objects)
    deployments = by_kind(objects, "Deployment")
    backends = []
    for cls, d in engines.items():
        pod_labels = d["spec"]["template"]["metadata"]["labels"]
        matching = [s for s in services if selects(s["spec"]["selector"], pod_labels)]
        assert len(matching) == 1, cls
        svc = matching[0]
        assert svc["spec"].get("clusterIP") == "None", f"{cls}: the engine Service must be headless"
        # It selects only this class's pods.
        others = [o for o in deployments if o is not d and
                  selects(svc["spec"]["selector"], o["spec"]["template"]["metadata"]["labels"])]
        assert not others, cls
        (port,) = svc["spec"]["ports"]
        (c,) = containers(d)
        assert port["targetPort"] in {p["name"] for p in c["ports"]}
        backends.append(f"http://{svc['metadata']['name']}.{NAMESPACE}.svc.cluster.local:{port['port']}")
    router = objects[("Deployment", "luzao-router")]
    (rc,) = containers(router)
    named = [a.split("=", 1)[1] for a in rc["args"] if a.startswith("--backend=")]
    assert sorted(named) == sorted(backends)
    front = [s for s in services if selects(s["spec"]["selector"], router["spec"]["template"]["metadata"]["labels"])]
    assert len(front) == 1 and front[0]["spec"].get("clusterIP") != "None"


def test_pool_configmap_is_a_valid_pool(objects, luzao_bin, tmp_path):
    pool_text = objects[("ConfigMap", "luzao-pool")]["data"]["pool.yaml"]
    pool = tmp_path / "pool.yaml"
    pool.write_text(pool_text)
    proc = run_cli(luzao_bin, "pool", "plan", str(pool), "--json")
    assert proc.returncode in (0, 1), proc.stderr.decode()
    assert not proc.stderr.decode().strip(), proc.stderr.decode()
    classes = {d["labels"]["class"] for d in yaml.safe_load(pool_text)["devices"]}
    assert classes == set(ENGINE_RESOURCES)


def test_container_args_are_real_luzao_options(objects, luzao_bin):
    for d in by_kind(objects, "Deployment"):
        for c in containers(d):
            sub, *flags = c["args"]
            proc = run_cli(luzao_bin, sub, "--help")
            assert proc.returncode == 0, (sub, proc.stderr.decode())
            help_text = proc.stdout.decode()
            for flag in flags:
                name = flag.split("=", 1)[0]
                assert re.search(rf"(^|[\s,]){re.escape(name)}\b", help_text), f"luzao {sub}: no {name}"
