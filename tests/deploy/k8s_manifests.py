"""Reading deploy/k8s/: its documents, their pod specs and containers, and the schemas they are validated against offline."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from ccas.settings import REPO_ROOT, cache_dir

K8S_DIR = REPO_ROOT / "deploy" / "k8s"
SECRETS_DOC = K8S_DIR / "secrets.example.md"
# The oldest Kubernetes the manifests are meant for, and the newest kubernetes-validate (requirements-dev.txt) ships.
KUBERNETES_VERSIONS = ("1.30", "1.37")
# scripts/setup.sh fetches the same version: the newest Maven Central serves, and one that knows Flink 1.20.
FLINK_OPERATOR_API_VERSION = "1.10.0"
FLINK_CRD_FILE = "flinkdeployments.flink.apache.org-v1.yml"
# The API groups kubernetes-validate has schemas for: Kubernetes' own. Anything else is a custom resource.
CORE_API_GROUP = re.compile(r"^(v1|(apps|batch|autoscaling|policy|networking\.k8s\.io|rbac\.authorization\.k8s\.io)/v\d\w*)$")

Document = dict[str, Any]


@dataclass(frozen=True)
class Container:
    """One container of a workload, with where it sits (for messages) and the pod spec around it."""

    where: str
    spec: Document
    pod: Document


@cache
def _load() -> tuple[tuple[Path, Document], ...]:
    documents = []
    for path in sorted(K8S_DIR.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                documents.append((path, document))
    return tuple(documents)


def documents() -> list[tuple[Path, Document]]:
    """Every document of every deploy/k8s/*.yaml file, each a fresh copy a test may change."""
    return copy.deepcopy(list(_load()))


def of_kind(kind: str) -> list[Document]:
    return [document for _, document in documents() if document["kind"] == kind]


def named(kind: str, name: str) -> Document:
    matches = [document for document in of_kind(kind) if document["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def is_core(document: Document) -> bool:
    return bool(CORE_API_GROUP.match(document["apiVersion"]))


def label(document: Document) -> str:
    return f"{document['kind']}/{document['metadata']['name']}"


def pod_specs(document: Document) -> Iterator[tuple[str, Document]]:
    """The pod specs a workload runs: a Deployment's or Job's template; the FlinkDeployment's JobManager and TaskManager
    pod templates, which the operator merges into the pods it creates."""
    if document["kind"] in ("Deployment", "Job"):
        yield label(document), document["spec"]["template"]["spec"]
    elif document["kind"] == "FlinkDeployment":
        for role in ("jobManager", "taskManager"):
            template = document["spec"][role].get("podTemplate")
            if template:
                yield f"{label(document)} {role}", template["spec"]


def containers(document: Document) -> Iterator[Container]:
    for where, pod in pod_specs(document):
        for spec in pod.get("initContainers", []) + pod["containers"]:
            yield Container(f"{where} container {spec['name']}", spec, pod)


def all_containers() -> list[Container]:
    return [container for _, document in documents() for container in containers(document)]


def as_pod_templates(flink_deployment: Document) -> list[Document]:
    """The FlinkDeployment's pod templates as core PodTemplate documents, so the API's own schema checks them."""
    templates = []
    for role in ("jobManager", "taskManager"):
        template = flink_deployment["spec"][role]["podTemplate"]
        templates.append({
            "apiVersion": "v1", "kind": "PodTemplate",
            "metadata": {"name": f"{flink_deployment['metadata']['name']}-{role}", "namespace": "ccas"},
            "template": {key: value for key, value in template.items() if key in ("metadata", "spec")},
        })
    return templates


def flink_crd_path() -> Path:
    return cache_dir() / f"flink-kubernetes-operator-api-{FLINK_OPERATOR_API_VERSION}" / FLINK_CRD_FILE


def flink_deployment_schema(version: str = "v1beta1") -> Document:
    """The operator's openAPIV3Schema of FlinkDeployment `version`, strict: an unknown field is an error, as with
    `kubectl apply`'s default field validation, instead of being pruned in silence."""
    path = flink_crd_path()
    assert path.is_file(), f"{path} is missing: `bash scripts/setup.sh` fetches it (the operator's API jar, Maven Central)"
    crd = yaml.safe_load(path.read_text())
    assert crd["kind"] == "CustomResourceDefinition" and crd["spec"]["names"]["kind"] == "FlinkDeployment"
    served = {entry["name"]: entry for entry in crd["spec"]["versions"]}
    assert version in served, f"the CRD serves {sorted(served)}, not {version}"
    schema = _strict(served[version]["schema"]["openAPIV3Schema"])
    # A CRD's schema leaves out the fields every object has, which the API server checks itself.
    schema["properties"] |= {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}
    return schema


def _strict(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _strict(value) for key, value in schema.items()}
    if ("properties" in strict and "additionalProperties" not in strict
            and not strict.get("x-kubernetes-preserve-unknown-fields")):
        strict["additionalProperties"] = False
    return strict


def documented_secrets() -> dict[str, set[str]]:
    """Secret name -> keys, from the table of secrets.example.md (rows `| `name` | `key`, `key` | ...`)."""
    secrets: dict[str, set[str]] = {}
    for line in SECRETS_DOC.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and re.fullmatch(r"`ccas-[a-z0-9-]+`", cells[0]):
            secrets.setdefault(cells[0].strip("`"), set()).update(re.findall(r"`([^`]+)`", cells[1]))
    return secrets


def referenced_secrets(container: Container) -> Iterator[tuple[str, str | None]]:
    """(Secret, key) pairs a container reads; key None where a volume mounts the whole Secret."""
    for entry in container.spec.get("env", []):
        reference = entry.get("valueFrom", {}).get("secretKeyRef")
        if reference:
            yield reference["name"], reference["key"]
    for source in container.spec.get("envFrom", []):
        if "secretRef" in source:
            yield source["secretRef"]["name"], None
    mounted = {mount["name"] for mount in container.spec.get("volumeMounts", [])}
    for volume in container.pod.get("volumes", []):
        if volume["name"] in mounted and "secret" in volume:
            items = volume["secret"].get("items")
            for key in [item["key"] for item in items] if items else [None]:
                yield volume["secret"]["secretName"], key
