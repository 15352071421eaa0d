"""deploy/kubernetes/: Kubernetes' own kinds validate against the Kubernetes JSON
schemas (kubernetes-validate, strict: no unknown field), the KEDA objects against
tests/deploy/keda.py, and the objects agree with each other and with backupctl."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions

from backupctl.config import KEYS, load_settings
from backupctl.registry import load_registry
from tests.conftest import REPO
from tests.deploy.keda import SCHEMAS

FOLDER = REPO / "deploy" / "kubernetes"
KUSTOMIZATION = FOLDER / "kustomization.yaml"
DEFAULT_GRACE = next(k.default for k in KEYS if k.dotted == "queue.grace")
# The oldest and the newest Kubernetes whose schemas the package bundles.
VERSIONS = sorted({all_versions()[0], all_versions()[-1]})


def manifests() -> list[Path]:
    return sorted(p for p in FOLDER.glob("*.yaml") if p != KUSTOMIZATION)


def documents() -> list[dict[str, Any]]:
    return [doc for path in manifests() for doc in yaml.safe_load_all(path.read_text()) if doc]


def one(kind: str) -> dict[str, Any]:
    [found] = [doc for doc in documents() if doc["kind"] == kind]
    return found


def pod_specs() -> list[dict[str, Any]]:
    cron, deployment = one("CronJob"), one("Deployment")
    return [
        cron["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        deployment["spec"]["template"]["spec"],
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_passes_its_schema(version: str) -> None:
    kinds = []
    for doc in documents():
        kinds.append(doc["kind"])
        if doc["kind"] in SCHEMAS:
            jsonschema.validate(doc, SCHEMAS[doc["kind"]])
        else:  # a kind it has no schema for raises, never passes unchecked
            kubernetes_validate.validate(doc, version, strict=True)
    assert sorted(kinds) == [
        "ConfigMap",
        "CronJob",
        "Deployment",
        "Namespace",
        "ScaledObject",
        "ServiceAccount",
        "TriggerAuthentication",
    ]


def test_the_schemas_refuse_a_misspelt_field() -> None:
    deployment = one("Deployment")
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 360
    with pytest.raises(kubernetes_validate.ValidationError, match="terminationGracePeriod"):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)
    scaled = one("ScaledObject")
    scaled["spec"]["triggers"][0]["metadata"]["queueLenght"] = "4"
    with pytest.raises(jsonschema.ValidationError, match="queueLenght"):
        jsonschema.validate(scaled, SCHEMAS["ScaledObject"])
    scaled = one("ScaledObject")
    scaled["spec"]["triggers"][0]["metadata"]["queueLength"] = 4
    with pytest.raises(jsonschema.ValidationError, match="is not of type 'string'"):
        jsonschema.validate(scaled, SCHEMAS["ScaledObject"])


def test_kustomization_lists_every_manifest_and_sets_the_namespace() -> None:
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text())
    # Every manifest, each once (the order is the apply order: the namespace first).
    assert sorted(kustomization["resources"]) == [p.name for p in manifests()]
    assert kustomization["resources"][0] == "namespace.yaml"
    assert kustomization["namespace"] == one("Namespace")["metadata"]["name"]


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    """The ConfigMap's files as backupctl reads them at /etc/backupctl."""
    for name, text in one("ConfigMap")["data"].items():
        (tmp_path / name).write_text(text)
    settings = load_settings(
        str(tmp_path / "backupctl.toml"),
        env={"BACKUPCTL_DATABASE_URL": "postgresql://backupctl@ledger.internal/backupctl"},
    )
    apps = load_registry(settings.registry)
    return {"settings": settings, "apps": apps}


def test_the_configmap_is_a_valid_configuration_and_registry_for_enqueue_mode(
    config: dict[str, Any],
) -> None:
    settings = config["settings"]
    assert settings.run.mode == "enqueue"
    assert settings.queue_url == "https://sqs.REGION.amazonaws.com/ACCOUNT_ID/QUEUE"
    assert settings.storage == "s3://BUCKET/PREFIX"
    assert [app.id for app in config["apps"]] == ["shop"]
    assert set(one("ConfigMap")["data"]) == {"backupctl.toml", "apps.toml"}
    for spec in pod_specs():
        [container] = spec["containers"]
        [mount] = [m for m in container["volumeMounts"] if m["name"] == "config"]
        assert mount["mountPath"] == "/etc/backupctl"  # the default config file's folder
        [volume] = [v for v in spec["volumes"] if v["name"] == "config"]
        assert volume["configMap"]["name"] == one("ConfigMap")["metadata"]["name"]


def test_workers_get_longer_than_the_grace_to_stop(config: dict[str, Any]) -> None:
    grace = one("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > config["settings"].queue_grace
    assert grace > DEFAULT_GRACE
    assert one("Deployment")["spec"]["template"]["spec"]["containers"][0]["args"] == ["worker"]


def test_the_cronjob_runs_hourly_and_says_why_allow_is_safe() -> None:
    cron = one("CronJob")
    minute, *rest = cron["spec"]["schedule"].split()
    assert minute.isdigit() and rest == ["*", "*", "*", "*"]
    assert cron["spec"]["concurrencyPolicy"] == "Allow"
    text = (FOLDER / "cronjob.yaml").read_text()
    assert "concurrencyPolicy: Allow is safe" in text and "compare-and-set" in text
    assert cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "run-nightly"
    ]


def test_secrets_are_referenced_never_inlined() -> None:
    assert all(doc["kind"] != "Secret" for doc in documents())
    for spec in pod_specs():
        [container] = spec["containers"]
        env = {e["name"]: e for e in container["env"]}
        ledger = env["BACKUPCTL_DATABASE_URL"]
        assert "value" not in ledger and ledger["valueFrom"]["secretKeyRef"]["name"]
        for entry in container["env"]:
            assert "://" not in entry.get("value", ""), entry
    text = "".join(p.read_text() for p in manifests())
    assert "postgresql://" not in text and "password" not in text.lower()


def test_the_pods_use_the_iam_role_of_the_serviceaccount() -> None:
    account = one("ServiceAccount")
    role = account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert role.startswith("arn:aws:iam::ACCOUNT_ID:role/")
    for spec in pod_specs():
        assert spec["serviceAccountName"] == account["metadata"]["name"]


def test_keda_scales_the_worker_deployment_on_the_configured_queue(
    config: dict[str, Any],
) -> None:
    scaled, auth = one("ScaledObject"), one("TriggerAuthentication")
    assert scaled["spec"]["scaleTargetRef"]["name"] == one("Deployment")["metadata"]["name"]
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["type"] == "aws-sqs-queue"
    assert trigger["metadata"]["queueURL"] == config["settings"].queue_url
    assert trigger["metadata"]["queueLength"] == str(config["settings"].run.parallel)
    [container] = one("Deployment")["spec"]["template"]["spec"]["containers"]
    region = {e["name"]: e.get("value") for e in container["env"]}["AWS_REGION"]
    assert trigger["metadata"]["awsRegion"] == region
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    assert auth["spec"]["podIdentity"] == {"provider": "aws", "identityOwner": "workload"}
