"""deploy/k8s/ is valid for the Kubernetes API and the Flink operator's CRD, offline, and pins what its README promises.

Core kinds are checked with kubernetes-validate's strict schemas (an unknown field fails, as `kubectl apply` does by default);
the FlinkDeployment with the operator's own openAPIV3Schema from its API jar (scripts/setup.sh caches it). Nothing here
talks to a cluster or a service.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, cast

import jsonschema
import kubernetes_validate
import pytest
from fastapi.testclient import TestClient

from core.config import env_var, load
from tests.deploy import k8s_manifests as k8s
from tests.deploy.k8s_manifests import Container

SECRET_VARIABLE = re.compile(r"PASSWORD$|TOKENS?$|_KEY$|SECRET|DATABASE_URL$")
PLACEHOLDER_SECRET = "k8s-manifest-test-placeholder-0123456789abcdef"
PLACEHOLDER_DATABASE_URL = "postgresql://k8s-test:placeholder@postgres.example:5432/ccas"
# Flink's own option (FlinkPipelineOptions): Beam's Python SDK does not declare it and passes it on to the job server.
FLINK_RUNNER_FLAGS = {"checkpointing_interval"}


def _settings_models() -> dict[str, Any]:
    from avaya_source.settings import PollerSettings
    from console.settings import ConsoleSettings
    from pipeline.settings import PipelineSettings
    from scoring_service.settings import ScoringSettings

    return {"Deployment/ccas-poller": PollerSettings, "Deployment/ccas-scoring-service": ScoringSettings,
            "Deployment/ccas-console": ConsoleSettings, "Job/ccas-pipeline-submit": PipelineSettings}


def _only_container(kind: str, name: str) -> Container:
    [container] = k8s.containers(k8s.named(kind, name))
    return container


def _environment(container: Container, tmp_path: Path) -> dict[str, str]:
    """What the container's process would see: its ConfigMaps and env, each secret a placeholder and each file a stand-in,
    every file path checked to lie under one of the container's mounts."""
    environment: dict[str, str] = {}
    for source in container.spec.get("envFrom", []):
        environment.update(k8s.named("ConfigMap", source["configMapRef"]["name"])["data"])
    for entry in container.spec.get("env", []):
        if "secretKeyRef" in entry.get("valueFrom", {}):
            secret = PLACEHOLDER_DATABASE_URL if entry["name"] == "CCAS_DATABASE_URL" else PLACEHOLDER_SECRET
            environment[entry["name"]] = secret
        else:
            environment[entry["name"]] = entry["value"]
    mounts = [mount["mountPath"] for mount in container.spec.get("volumeMounts", [])]
    for name, value in environment.items():
        if value.startswith("/"):
            assert any(value.startswith(mount + "/") for mount in mounts), f"{container.where}: {name}={value} is not mounted"
            stand_in = tmp_path / value.lstrip("/")
            stand_in.parent.mkdir(parents=True, exist_ok=True)
            stand_in.write_text(PLACEHOLDER_SECRET)
            environment[name] = str(stand_in)
    return environment


def _use_environment(monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]) -> None:
    # Only what the manifest gives counts; CCAS_CACHE is where this machine keeps downloads, not a component's setting.
    for name in [name for name in os.environ if name.startswith("CCAS_") and name != "CCAS_CACHE"]:
        monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)


def test_every_document_is_named_and_lives_in_the_ccas_namespace() -> None:
    files = {path.name for path, _ in k8s.documents()}
    assert files >= {"namespace.yaml", "service-accounts.yaml", "config.yaml", "flink-state.yaml", "flink-deployment.yaml",
                     "beam-job-server.yaml", "kafka-expansion.yaml", "pipeline-submit.yaml", "scoring-service.yaml",
                     "console.yaml", "poller.yaml"}
    assert (k8s.K8S_DIR / "README.md").is_file() and k8s.SECRETS_DOC.is_file()
    for path, document in k8s.documents():
        assert document.get("apiVersion") and document.get("kind") and document["metadata"].get("name"), path.name
        if document["kind"] != "Namespace":
            assert document["metadata"].get("namespace") == "ccas", f"{path.name}: {k8s.label(document)}"
    assert [namespace["metadata"]["name"] for namespace in k8s.of_kind("Namespace")] == ["ccas"]


@pytest.mark.parametrize("kubernetes_version", k8s.KUBERNETES_VERSIONS)
def test_core_documents_validate_against_the_kubernetes_api_schema(kubernetes_version: str) -> None:
    core = [document for _, document in k8s.documents() if k8s.is_core(document)]
    # The operator hands the FlinkDeployment's pod templates to the API server inside the pods it creates.
    core += [template for document in k8s.of_kind("FlinkDeployment") for template in k8s.as_pod_templates(document)]
    assert len(core) > 20
    for document in core:
        try:
            kubernetes_validate.validate(document, kubernetes_version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(part) for part in error.path)
            pytest.fail(f"{k8s.label(document)} is invalid for Kubernetes {kubernetes_version}: {path}: {error.message}")
    custom = {k8s.label(document) for _, document in k8s.documents() if not k8s.is_core(document)}
    assert custom == {"FlinkDeployment/ccas-flink"}, "every other kind must be one kubernetes-validate checks"


def test_the_flink_deployment_validates_against_the_operators_crd() -> None:
    flink = k8s.named("FlinkDeployment", "ccas-flink")
    assert flink["apiVersion"] == "flink.apache.org/v1beta1"
    errors = sorted(jsonschema.Draft7Validator(k8s.flink_deployment_schema()).iter_errors(flink), key=str)
    assert not errors, "\n".join(f"{'.'.join(map(str, error.path))}: {error.message}" for error in errors)
    assert flink["spec"]["flinkVersion"] == "v1_20" and flink["spec"]["image"].startswith("flink:1.20")
    # A session cluster: the Beam job server submits the Python job through its REST service (README.md).
    assert "job" not in flink["spec"]
    job_server = _only_container("Deployment", "ccas-beam-job-server")
    assert f"--flink-master={flink['metadata']['name']}-rest:8081" in job_server.spec["args"]


def test_strict_validation_refuses_an_unknown_field() -> None:
    """The validators above are only worth something if a typo fails them: one misspelt field per schema."""
    deployment = k8s.named("Deployment", "ccas-scoring-service")
    deployment["spec"]["template"]["spec"]["containers"][0]["resource"] = {"limits": {"cpu": "1"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, k8s.KUBERNETES_VERSIONS[-1], strict=True)
    flink = k8s.named("FlinkDeployment", "ccas-flink")
    flink["spec"]["taskManager"]["replica"] = 3
    assert list(jsonschema.Draft7Validator(k8s.flink_deployment_schema()).iter_errors(flink))


def test_no_secret_value_is_written_in_the_manifests() -> None:
    for secret in k8s.of_kind("Secret"):
        assert not secret.get("data") and not secret.get("stringData"), f"{k8s.label(secret)} holds values inline"
    for config_map in k8s.of_kind("ConfigMap"):
        assert not [key for key in config_map["data"] if SECRET_VARIABLE.search(key)], k8s.label(config_map)
    for container in k8s.all_containers():
        for entry in container.spec.get("env", []):
            if SECRET_VARIABLE.search(entry["name"]):
                assert "secretKeyRef" in entry.get("valueFrom", {}), f"{container.where}: {entry['name']} is not from a Secret"


def test_every_secret_the_manifests_read_is_documented() -> None:
    documented = k8s.documented_secrets()
    referenced = {pair for container in k8s.all_containers() for pair in k8s.referenced_secrets(container)}
    assert referenced
    for name, key in sorted(referenced, key=str):
        assert name in documented, f"Secret {name} is read but not listed in secrets.example.md"
        assert key is None or key in documented[name], f"key {key} of Secret {name} is not listed in secrets.example.md"
    assert {name for name, _ in referenced} == set(documented), "secrets.example.md lists Secrets nothing reads"


def test_every_container_requests_and_limits_cpu_and_memory() -> None:
    containers = k8s.all_containers()
    assert len(containers) >= 8
    for container in containers:
        if container.spec["name"] == "flink-main-container":
            continue  # the operator sizes it from spec.jobManager/taskManager.resource, checked below
        resources = container.spec.get("resources", {})
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(bound, {})), f"{container.where}: no cpu and memory {bound}"
        # A pod that outgrows its memory is restarted rather than starving its neighbours (README.md, Sizing).
        assert resources["requests"]["memory"] == resources["limits"]["memory"], container.where
    flink = k8s.named("FlinkDeployment", "ccas-flink")
    for role in ("jobManager", "taskManager"):
        assert {"cpu", "memory"} <= set(flink["spec"][role]["resource"]), role


def test_the_poller_runs_one_replica_that_no_autoscaler_scales() -> None:
    poller = k8s.named("Deployment", "ccas-poller")
    assert poller["spec"]["replicas"] == 1
    # A rolling update would run two pollers for a moment, and they would fence each other.
    assert poller["spec"]["strategy"]["type"] == "Recreate"
    targets = {autoscaler["spec"]["scaleTargetRef"]["name"] for autoscaler in k8s.of_kind("HorizontalPodAutoscaler")}
    assert "ccas-poller" not in targets


def test_each_autoscaler_scales_an_existing_deployment_on_cpu() -> None:
    deployments = {deployment["metadata"]["name"]: deployment for deployment in k8s.of_kind("Deployment")}
    autoscalers = k8s.of_kind("HorizontalPodAutoscaler")
    assert {autoscaler["metadata"]["name"] for autoscaler in autoscalers} == {"ccas-scoring-service", "ccas-console"}
    for autoscaler in autoscalers:
        spec = autoscaler["spec"]
        target = spec["scaleTargetRef"]
        assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment"), k8s.label(autoscaler)
        assert target["name"] in deployments, f"{k8s.label(autoscaler)} scales a Deployment that does not exist"
        assert 1 <= spec["minReplicas"] <= spec["maxReplicas"]
        assert [metric["resource"]["name"] for metric in spec["metrics"]] == ["cpu"]
        # The HPA owns the count: a replicas field would be reset by every `kubectl apply`.
        assert "replicas" not in deployments[target["name"]]["spec"], target["name"]


@pytest.mark.parametrize("workload", ["Deployment/ccas-scoring-service", "Deployment/ccas-console"])
def test_probes_ask_the_real_health_route_on_the_served_port(workload: str, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    kind, name = workload.split("/")
    container = _only_container(kind, name)
    port = {entry["name"]: entry["containerPort"] for entry in container.spec["ports"]}["https"]
    assert f"--port={port}" in container.spec["args"]
    for probe in ("readinessProbe", "livenessProbe"):
        check = container.spec[probe]["httpGet"]
        assert (check["path"], check["port"], check["scheme"]) == ("/healthz", "https", "HTTPS"), probe
    # The app built from the settings these manifests give answers the probe without a token or a session.
    _use_environment(monkeypatch, _environment(container, tmp_path))
    settings = load(_settings_models()[workload])
    if name == "ccas-scoring-service":
        from scoring_service.main import create_app

        app = create_app(settings)
    else:
        from console.app import create_app as create_console

        unused = cast(Any, object())  # /healthz touches neither the database nor S3
        app = create_console(settings, database=unused, recordings=unused)
    assert TestClient(app).get("/healthz").status_code == 200


@pytest.mark.parametrize("workload", ["Deployment/ccas-poller", "Deployment/ccas-scoring-service", "Deployment/ccas-console"])
def test_each_service_gets_every_setting_it_requires(workload: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from avaya_source.poller import build_parser as poller_parser
    from console.main import build_parser as console_parser
    from scoring_service.main import build_parser as scoring_parser

    model = _settings_models()[workload]
    kind, name = workload.split("/")
    container = _only_container(kind, name)
    known = {env_var(model, field) for field in model.model_fields}
    unknown = {entry["name"] for entry in container.spec.get("env", [])} - known
    assert not unknown, f"{container.where} sets variables {model.__name__} does not read: {sorted(unknown)}"
    _use_environment(monkeypatch, _environment(container, tmp_path))
    parser = {"ccas-poller": poller_parser, "ccas-scoring-service": scoring_parser, "ccas-console": console_parser}[name]()
    command, *flags = container.spec["args"]
    assert command == name.removeprefix("ccas-")
    load(model, parser.parse_args(flags))  # raises ConfigurationError naming whatever is missing or wrong


def test_the_submitter_passes_the_pipelines_own_validation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipeline.options import validate_options

    container = _only_container("Job", "ccas-pipeline-submit")
    assert container.spec["command"] == ["ccas-pipeline"]
    _use_environment(monkeypatch, _environment(container, tmp_path))
    options = PipelineOptions(container.spec["args"])
    unknown = set(options.get_all_options(retain_unknown_options=True)) - set(options.get_all_options())
    assert unknown <= FLINK_RUNNER_FLAGS, f"flags nothing declares (a typo?): {sorted(unknown - FLINK_RUNNER_FLAGS)}"
    job = validate_options(options)  # what ccas-pipeline checks before it submits: every problem listed
    assert job.avaya_password == PLACEHOLDER_SECRET  # read from the mounted file


def test_the_shared_config_map_holds_only_variables_its_readers_know() -> None:
    models = _settings_models()
    readers = [models[k8s.label(document)] for _, document in k8s.documents() for container in k8s.containers(document)
               if any(source.get("configMapRef", {}).get("name") == "ccas-config"
                      for source in container.spec.get("envFrom", []))]
    assert len(readers) == 3
    known = {env_var(model, field) for model in readers for field in model.model_fields}
    assert not set(k8s.named("ConfigMap", "ccas-config")["data"]) - known


def test_the_flink_slots_hold_the_submitted_parallelism_and_each_taskmanager_has_its_worker_pool() -> None:
    flink = k8s.named("FlinkDeployment", "ccas-flink")["spec"]
    slots = flink["taskManager"]["replicas"] * int(flink["flinkConfiguration"]["taskmanager.numberOfTaskSlots"])
    args = dict(arg.removeprefix("--").split("=", 1) for arg in _only_container("Job", "ccas-pipeline-submit").spec["args"])
    assert int(args["parallelism"]) == int(flink["flinkConfiguration"]["parallelism.default"]) <= slots
    assert args["environment_type"] == "EXTERNAL"
    [pool] = [container for container in k8s.containers(k8s.named("FlinkDeployment", "ccas-flink"))
              if container.spec["name"] == "beam-worker-pool"]
    assert "taskManager" in pool.where and pool.spec["args"] == ["--worker_pool"]
    ports = {entry["containerPort"] for entry in pool.spec["ports"]}
    assert args["environment_config"] == "localhost:50000" and 50000 in ports


def test_no_pod_mounts_a_service_account_token() -> None:
    accounts = {account["metadata"]["name"]: account for account in k8s.of_kind("ServiceAccount")}
    assert all(account["automountServiceAccountToken"] is False for account in accounts.values())
    for _, document in k8s.documents():
        for where, pod in k8s.pod_specs(document):
            assert pod.get("automountServiceAccountToken") is False, where
            if document["kind"] != "FlinkDeployment":
                assert pod.get("serviceAccountName") in accounts, where
    assert k8s.named("FlinkDeployment", "ccas-flink")["spec"]["serviceAccount"] in accounts


def test_each_service_selects_pods_that_serve_its_ports() -> None:
    pods = [(document["spec"]["template"], document) for document in k8s.of_kind("Deployment")]
    for service in k8s.of_kind("Service"):
        selector = service["spec"]["selector"]
        matches = [(template, document) for template, document in pods
                   if selector.items() <= template["metadata"]["labels"].items()]
        assert len(matches) == 1, f"{k8s.label(service)} selects {len(matches)} Deployments"
        template, _ = matches[0]
        served: set[Any] = set()
        for container in template["spec"]["containers"]:
            served |= {port.get("name") for port in container.get("ports", [])}
            served |= {port["containerPort"] for port in container.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in served, f"{k8s.label(service)} port {port['name']}"
