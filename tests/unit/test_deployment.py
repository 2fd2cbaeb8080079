"""The deployment files cannot drift from the code: the Kubernetes manifests, the compose file's
alerts and Grafana dashboard are what `creative-sync k8s` writes from the topic catalogue
(creative_sync/manifests.py); they validate offline against the Kubernetes schemas
(kubernetes-validate) and the custom resources' own schemas; every metric an alert or a panel
asks for is one the code exports; docker-compose.yml validates against the compose
specification's schema, and its gateway and workers share one secrets volume and only that."""
from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from creative_sync import manifests
from gateway.metrics import GatewayMetrics
from streams.metrics import WorkerMetrics
from topics.catalogue import MAX_MESSAGE_BYTES, all_specs

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = "1.31"

#: The custom resources' schemas, as their operators define them (the parts the manifests use):
#: Strimzi's KafkaTopic (kafka.strimzi.io/v1beta2) and the Prometheus operator's PrometheusRule.
CUSTOM = {
    "KafkaTopic": {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "properties": {
        "metadata": {"type": "object", "required": ["name", "labels"], "properties": {
            "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
            "labels": {"type": "object", "required": ["strimzi.io/cluster"]}}},
        "spec": {"type": "object", "additionalProperties": False, "required": ["partitions", "replicas"], "properties": {
            "topicName": {"type": "string"}, "partitions": {"type": "integer", "minimum": 1},
            "replicas": {"type": "integer", "minimum": 1, "maximum": 32767}, "config": {"type": "object"}}}}},
    "PrometheusRule": {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "properties": {
        "spec": {"type": "object", "required": ["groups"], "properties": {"groups": {"type": "array", "items": {
            "type": "object", "required": ["name", "rules"], "properties": {"name": {"type": "string"}, "rules": {
                "type": "array", "items": {"type": "object", "required": ["alert", "expr"], "additionalProperties": False,
                                           "properties": {"alert": {"type": "string"}, "expr": {"type": "string"},
                                                          "for": {"type": "string", "pattern": r"^\d+[smhd]$"},
                                                          "labels": {"type": "object"},
                                                          "annotations": {"type": "object"}}}}}}}}}}},
}


def committed(name: str) -> str:
    return (ROOT / "k8s" / name).read_text()


@pytest.mark.parametrize("name", sorted(manifests.files()))
def test_the_committed_file_is_what_the_command_writes(name):
    assert committed(name) == manifests.files()[name], f"k8s/{name} differs: run `creative-sync k8s`"


def _documents() -> list[tuple[str, dict]]:
    return [(name, doc) for name in manifests.documents() for doc in yaml.safe_load_all(committed(name)) if doc]


@pytest.mark.parametrize("name,doc", _documents(), ids=lambda v: v if isinstance(v, str) else f"{v['kind']}/{v['metadata']['name']}")
def test_every_manifest_is_valid_against_its_schema(name, doc):
    if doc["kind"] in CUSTOM:
        jsonschema.validate(doc, CUSTOM[doc["kind"]])
    else:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_a_broken_manifest_is_caught():
    worker = next(d for _, d in _documents() if d["kind"] == "StatefulSet")
    broken = json.loads(json.dumps(worker))
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)
    topic = next(d for _, d in _documents() if d["kind"] == "KafkaTopic")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**topic, "spec": {**topic["spec"], "partitions": 0}}, CUSTOM["KafkaTopic"])


def test_every_topic_and_changelog_of_the_catalogue_is_a_kafka_topic_as_the_catalogue_says():
    topics = {d["spec"]["topicName"]: d["spec"] for _, d in _documents() if d["kind"] == "KafkaTopic"}
    specs = all_specs(manifests.Cluster().app_id)
    assert set(topics) == {s.full_name() for s in specs}
    for spec in specs:
        config = topics[spec.full_name()]["config"]
        assert topics[spec.full_name()]["partitions"] == spec.partitions
        assert config["cleanup.policy"] == spec.cleanup and config["max.message.bytes"] == MAX_MESSAGE_BYTES
        assert config.get("retention.ms") == spec.retention_ms


def test_workers_and_gateways_share_the_secret_and_keep_their_state_apart():
    docs = {(d["kind"], d["metadata"]["name"]): d for _, d in _documents()}
    config = docs[("ConfigMap", "creative-sync")]["data"]
    assert config["CREATIVE_SYNC_SECRETS_DIR"] == "/secrets" and config["CREATIVE_SYNC_STORE"] == "rocksdb://"
    for kind, name in (("StatefulSet", "creative-sync-worker"), ("Deployment", "creative-sync-gateway")):
        pod = docs[(kind, name)]["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert {"name": "secrets", "mountPath": "/secrets", "readOnly": True} in container["volumeMounts"]
        assert {"name": "secrets", "secret": {"secretName": "creative-sync-secrets", "defaultMode": 0o400}} in pod["volumes"]
        assert {"readinessProbe", "livenessProbe", "startupProbe", "resources"} <= set(container)
    assert docs[("StatefulSet", "creative-sync-worker")]["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert docs[("PodDisruptionBudget", "creative-sync-worker")]["spec"]["maxUnavailable"] == 1


def _exported() -> set[str]:
    names = set()
    for metrics in (WorkerMetrics(), GatewayMetrics()):
        for family in metrics.registry.collect():
            names |= {family.name, f"{family.name}_total", f"{family.name}_bucket"}
    return names


def test_every_metric_an_alert_or_a_panel_asks_for_is_exported():
    exported = _exported()
    queries = [rule["expr"] for rule in manifests.rule_groups()["groups"][0]["rules"]]
    queries += [target["expr"] for panel in json.loads(committed("grafana/creative-sync.json"))["panels"]
                for target in panel["targets"]]
    asked = {name for query in queries for name in re.findall(r"\bcreative_sync_[a-z_]+", query)}
    assert asked and asked <= exported, asked - exported
    assert {"SalesAgentUnavailable", "ConsumerLagGrowing", "DeadLettersGrowing", "CampaignCritical"} == {
        r["alert"] for r in manifests.rule_groups()["groups"][0]["rules"]}


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_the_compose_file_follows_the_compose_specification():
    schema = json.loads((Path(__file__).parent / "compose-spec.json").read_text())
    jsonschema.Draft201909Validator(schema).validate(_compose())
    broken = _compose()
    broken["services"]["gateway"]["ports"] = 8080
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft201909Validator(schema).validate(broken)


def test_the_compose_file_runs_the_product_with_shared_secrets_and_its_monitoring():
    compose = _compose()
    services = compose["services"]
    assert {"kafka", "secrets", "topics", "worker-1", "worker-2", "gateway", "sim-agents", "demo", "prometheus",
            "grafana"} <= set(services)
    assert services["secrets"]["command"] == ["secrets", "init", "--dir", "/secrets"] and "secrets:/secrets" in services["secrets"]["volumes"]
    for name in ("worker-1", "worker-2", "gateway"):
        service = services[name]
        assert service["environment"]["CREATIVE_SYNC_SECRETS_DIR"] == "/secrets"
        assert "secrets:/secrets:ro" in service["volumes"]
        assert service["depends_on"]["secrets"]["condition"] == "service_completed_successfully"
    worker_volumes = [v.split(":")[0] for name in ("worker-1", "worker-2") for v in services[name]["volumes"] if "/data" in v]
    assert len(set(worker_volumes)) == 2  # each worker's tables its own
    for config in compose["configs"].values():
        assert (ROOT / config["file"]).is_file(), config
    assert services["demo"]["command"][0] == "demo"
