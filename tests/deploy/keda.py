"""A JSON Schema for the KEDA objects of deploy/kubernetes/scaledobject.yaml.

kubernetes-validate bundles the schemas of Kubernetes' own kinds only. KEDA's CRD
schemas are large generated files, so instead this schema is written from KEDA's
documented structure (the ScaledObject specification, the aws-sqs-queue scaler's
parameter list and the AWS pod identity provider, KEDA 2.13 and later) for the
fields the recipe uses and their documented siblings. It is strict: an unknown
or misspelt field, a trigger parameter the scaler does not have, or a non-string
parameter value (KEDA's trigger metadata is a map of strings) fails.
"""

from __future__ import annotations

from typing import Any

_NAME = {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 253}
_COUNT = {"type": "integer", "minimum": 0}

_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": _NAME,
        "namespace": _NAME,
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "additionalProperties": False,
}

# The aws-sqs-queue scaler's parameters; identityOwner here is deprecated since 2.13
# in favour of the TriggerAuthentication's, so it is left out on purpose.
SQS_PARAMETERS = (
    "queueURL",
    "queueURLFromEnv",
    "queueLength",
    "activationQueueLength",
    "scaleOnInFlight",
    "scaleOnDelayed",
    "awsRegion",
    "awsEndpoint",
)

_SQS_TRIGGER = {
    "type": "object",
    "required": ["type", "metadata"],
    "properties": {
        "type": {"const": "aws-sqs-queue"},
        "name": {"type": "string"},
        "useCachedMetrics": {"type": "boolean"},
        "metricType": {"enum": ["AverageValue", "Value"]},
        "authenticationRef": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": _NAME,
                "kind": {"enum": ["TriggerAuthentication", "ClusterTriggerAuthentication"]},
            },
            "additionalProperties": False,
        },
        "metadata": {
            "type": "object",
            "required": ["awsRegion"],
            "anyOf": [{"required": ["queueURL"]}, {"required": ["queueURLFromEnv"]}],
            "properties": {p: {"type": "string"} for p in SQS_PARAMETERS},
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}

SCALED_OBJECT: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": _NAME,
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "envSourceContainerName": {"type": "string"},
                    },
                    "additionalProperties": False,
                },
                "pollingInterval": _COUNT,
                "cooldownPeriod": _COUNT,
                "initialCooldownPeriod": _COUNT,
                "idleReplicaCount": {"const": 0},
                "minReplicaCount": _COUNT,
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "triggers": {"type": "array", "minItems": 1, "items": _SQS_TRIGGER},
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}

TRIGGER_AUTHENTICATION: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "TriggerAuthentication"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["podIdentity"],
            "properties": {
                "podIdentity": {
                    "type": "object",
                    "required": ["provider"],
                    "properties": {
                        "provider": {"enum": ["aws", "aws-eks", "azure-workload", "gcp", "none"]},
                        # roleArn and identityOwner are mutually exclusive.
                        "roleArn": {"type": "string"},
                        "identityOwner": {"enum": ["keda", "workload"]},
                    },
                    "not": {"required": ["roleArn", "identityOwner"]},
                    "additionalProperties": False,
                },
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}

SCHEMAS = {"ScaledObject": SCALED_OBJECT, "TriggerAuthentication": TRIGGER_AUTHENTICATION}
