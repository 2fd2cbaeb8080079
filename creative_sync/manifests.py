"""`creative-sync k8s [--out k8s]`: the Kubernetes manifests, generated from the topic catalogue
(topics.catalogue) and the settings, so that what a cluster runs cannot drift from the code:

- `topics.yaml`: a Strimzi `KafkaTopic` per topic and per table changelog (partitions, cleanup
  policy, retention, message size), for Strimzi's topic operator;
- `creative-sync.yaml`: the settings (ConfigMap), the worker StatefulSet (RocksDB tables on a
  volume, probes, resources; a headless Service for the owner queries; a PodDisruptionBudget), the
  gateway Deployment and Service (and its PodDisruptionBudget); both mount the deployment's secrets
  (Secret `creative-sync-secrets`, made from `creative-sync secrets init --dir`);
- `monitoring.yaml`: a `PrometheusRule` with the alerts (agent unavailable, consumer lag, dead
  letters growing, campaign critical);
- for docker-compose.yml: the same alerts as a Prometheus rule file (`compose/alerts.yml`) and the
  Grafana dashboard (`grafana/creative-sync.json`).

`tests/unit/test_deployment.py` fails when the committed files differ from what this writes, and
validates them offline against the Kubernetes schemas (kubernetes-validate).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from topics.catalogue import MAX_MESSAGE_BYTES, TOPICS, all_specs

Doc = dict[str, Any]


@dataclass(frozen=True)
class Cluster:
    """What the manifests assume of the cluster they go to."""

    image: str = "creative-sync:latest"
    kafka_cluster: str = "kafka"  # the Strimzi Kafka resource's name (label strimzi.io/cluster)
    bootstrap: str = "kafka-kafka-bootstrap:9092"  # Strimzi's bootstrap service of that cluster
    app_id: str = "creative-sync"
    topic_replicas: int = 3
    workers: int = 2
    gateways: int = 2
    secret: str = "creative-sync-secrets"

    @property
    def max_workers(self) -> int:
        """More workers than the widest topic's partitions would sit idle."""
        return max(t.partitions for t in TOPICS)


LABELS = {"app.kubernetes.io/part-of": "creative-sync"}
WORKER_PORT, GATEWAY_PORT = 6066, 8080


def _meta(name: str, component: str | None = None, **more: Any) -> Doc:
    labels = {**LABELS, **({"app.kubernetes.io/component": component} if component else {})}
    return {"name": name, "labels": labels, **more}


def topics(cluster: Cluster) -> list[Doc]:
    docs = []
    for spec in all_specs(cluster.app_id):
        config: dict[str, Any] = {"cleanup.policy": spec.cleanup, "max.message.bytes": MAX_MESSAGE_BYTES,
                                  "min.insync.replicas": min(2, cluster.topic_replicas)}
        if spec.retention_ms is not None:
            config["retention.ms"] = spec.retention_ms
        name = spec.full_name()
        docs.append({
            "apiVersion": "kafka.strimzi.io/v1beta2", "kind": "KafkaTopic",
            # a resource name allows no "_" (faust's changelogs have them): the topic's own name is topicName
            "metadata": {"name": name.replace("_", "-"), "labels": {"strimzi.io/cluster": cluster.kafka_cluster, **LABELS},
                         "annotations": {"creative-sync/role": spec.role}},
            "spec": {"topicName": name, "partitions": spec.partitions, "replicas": cluster.topic_replicas, "config": config},
        })
    return docs


def _probe(path: str, port: str, period_s: int, *, failures: int = 3) -> Doc:
    return {"httpGet": {"path": path, "port": port}, "periodSeconds": period_s, "failureThreshold": failures}


def _secrets_volume(cluster: Cluster) -> tuple[Doc, Doc]:
    return ({"name": "secrets", "secret": {"secretName": cluster.secret, "defaultMode": 0o400}},
            {"name": "secrets", "mountPath": "/secrets", "readOnly": True})


def workload(cluster: Cluster) -> list[Doc]:
    settings = {
        "KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap,
        "CREATIVE_SYNC_APP_ID": cluster.app_id,
        "CREATIVE_SYNC_DATA_DIR": "/data",
        "CREATIVE_SYNC_SECRETS_DIR": "/secrets",
        "CREATIVE_SYNC_STORE": "rocksdb://",
        "CREATIVE_SYNC_STANDBY_REPLICAS": "1",
        "CREATIVE_SYNC_GATEWAY_HOST": "0.0.0.0",
        "CREATIVE_SYNC_WORKER_HOST": "0.0.0.0",
        # any worker tells which worker owns what; the gateways learn the rest from it
        "CREATIVE_SYNC_WORKER_URLS": ",".join(
            f"http://creative-sync-worker-{n}.creative-sync-worker:{WORKER_PORT}" for n in range(cluster.workers)),
        "CREATIVE_SYNC_LOG_FORMAT": "json",
    }
    secrets_volume, secrets_mount = _secrets_volume(cluster)
    worker_labels = {**LABELS, "app.kubernetes.io/component": "worker"}
    gateway_labels = {**LABELS, "app.kubernetes.io/component": "gateway"}
    worker = {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": _meta("creative-sync-worker", "worker"),
        "spec": {
            "serviceName": "creative-sync-worker", "replicas": cluster.workers,
            # all at once: a worker joins the group as soon as it can (the group balances them)
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": worker_labels},
            "template": {
                "metadata": {"labels": worker_labels,
                             "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(WORKER_PORT)}},
                "spec": {
                    # faust leaves the group and flushes its tables on SIGTERM (~7 s)
                    "terminationGracePeriodSeconds": 30,
                    "containers": [{
                        "name": "worker", "image": cluster.image, "args": ["worker"],
                        "envFrom": [{"configMapRef": {"name": "creative-sync"}}],
                        # the gateways and the other workers reach this worker's owner queries by its stable name
                        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                {"name": "CREATIVE_SYNC_WORKER_ADVERTISED_HOST", "value": "$(POD_NAME).creative-sync-worker"}],
                        "ports": [{"containerPort": WORKER_PORT, "name": "web"}],
                        "readinessProbe": _probe("/readyz", "web", 5),
                        "livenessProbe": _probe("/healthz", "web", 10, failures=6),
                        "startupProbe": _probe("/healthz", "web", 5, failures=60),  # the adcp SDK's import: ~20 s
                        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}, secrets_mount],
                    }],
                    "volumes": [secrets_volume],
                },
            },
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                                      "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}}],
        },
    }
    gateway = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta("creative-sync-gateway", "gateway"),
        "spec": {
            "replicas": cluster.gateways, "selector": {"matchLabels": gateway_labels},
            "template": {
                "metadata": {"labels": gateway_labels,
                             "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(GATEWAY_PORT)}},
                "spec": {"containers": [{
                    "name": "gateway", "image": cluster.image, "args": ["gateway"],
                    "envFrom": [{"configMapRef": {"name": "creative-sync"}}],
                    "ports": [{"containerPort": GATEWAY_PORT, "name": "http"}],
                    "readinessProbe": _probe("/readyz", "http", 5),
                    "livenessProbe": _probe("/healthz", "http", 10, failures=6),
                    "startupProbe": _probe("/healthz", "http", 5, failures=60),
                    "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}, secrets_mount],
                }], "volumes": [{"name": "data", "emptyDir": {}}, secrets_volume]},
            },
        },
    }
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("creative-sync"), "data": settings},
        {"apiVersion": "v1", "kind": "Service", "metadata": _meta("creative-sync-worker", "worker"),
         "spec": {"clusterIP": "None", "publishNotReadyAddresses": True, "selector": worker_labels,
                  "ports": [{"name": "web", "port": WORKER_PORT, "targetPort": "web"}]}},
        worker,
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": _meta("creative-sync-worker", "worker"),
         "spec": {"maxUnavailable": 1, "selector": {"matchLabels": worker_labels}}},
        gateway,
        {"apiVersion": "v1", "kind": "Service", "metadata": _meta("creative-sync-gateway", "gateway"),
         "spec": {"selector": gateway_labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": _meta("creative-sync-gateway", "gateway"),
         "spec": {"minAvailable": 1, "selector": {"matchLabels": gateway_labels}}},
    ]


#: (alert, expression, for, severity, summary)
ALERTS = (
    ("SalesAgentUnavailable", "max by (sales_agent) (creative_sync_sales_agent_available) == 0", "5m", "warning",
     "Sales agent {{ $labels.sales_agent }} has not answered for 5 minutes: its deliveries wait (they resume on its return)."),
    ("ConsumerLagGrowing", "sum by (topic) (creative_sync_worker_consumer_lag) > 10000", "10m", "warning",
     "The workers are more than 10,000 records behind on {{ $labels.topic }}: add workers, up to the topic's partitions."),
    ("DeadLettersGrowing", "increase(creative_sync_worker_dead_letters_total[15m]) > 0", "0m", "warning",
     "Messages went to creative-sync.dead-letters in the last 15 minutes (stage and error are in each record)."),
    ("CampaignCritical", 'sum(creative_sync_campaigns{status="critical"}) > 0', "10m", "critical",
     "{{ $value }} campaigns are critical: a tactic has no compatible or approved creative, or most syncs fail."),
)


def alerts(cluster: Cluster) -> list[Doc]:
    return [{"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": _meta("creative-sync"),
             "spec": rule_groups()}]


def rule_groups() -> Doc:
    """The alerts as Prometheus rule groups (a PrometheusRule's spec; the compose file's rule file)."""
    return {"groups": [{"name": "creative-sync", "rules": [
        {"alert": name, "expr": expr, "for": wait, "labels": {"severity": severity}, "annotations": {"summary": summary}}
        for name, expr, wait, severity, summary in ALERTS]}]}


#: (title, unit, [(PromQL, legend)]): the Grafana dashboard's panels
PANELS = (
    ("Deliveries per second", "ops", [("sum(rate(creative_sync_sync_deliveries_total[1m]))", "deliveries/s")]),
    ("Failed calls per sales agent", "ops",
     [("sum by (sales_agent) (rate(creative_sync_sync_failures_total[5m]))", "{{sales_agent}}")]),
    ("Approval latency", "s",
     [("histogram_quantile(0.5, sum by (le) (rate(creative_sync_approval_latency_seconds_bucket[15m])))", "median"),
      ("histogram_quantile(0.95, sum by (le) (rate(creative_sync_approval_latency_seconds_bucket[15m])))", "95th")]),
    ("Consumer lag", "short", [("sum by (topic) (creative_sync_worker_consumer_lag)", "{{topic}}")]),
    ("Campaigns by health", "short", [("sum by (status) (creative_sync_campaigns)", "{{status}}")]),
    ("Dead letters (last 15 min)", "short", [("sum(increase(creative_sync_worker_dead_letters_total[15m]))", "dead letters")]),
    ("Sales agents unavailable", "short", [("count(creative_sync_sales_agent_available == 0) or vector(0)", "unavailable")]),
    ("Gateway requests per second", "reqps", [("sum by (route) (rate(creative_sync_gateway_requests_total[1m]))",
                                                "{{route}}")]),
)


def dashboard() -> Doc:
    """The Grafana dashboard of the compose file (k8s/grafana/creative-sync.json)."""
    panels = []
    for n, (title, unit, queries) in enumerate(PANELS):
        panels.append({
            "id": n + 1, "title": title, "type": "timeseries", "datasource": {"type": "prometheus", "uid": "prometheus"},
            "gridPos": {"h": 8, "w": 12, "x": 12 * (n % 2), "y": 8 * (n // 2)},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [{"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend,
                         "datasource": {"type": "prometheus", "uid": "prometheus"}} for i, (expr, legend) in enumerate(queries)],
        })
    return {"uid": "creative-sync", "title": "creative-sync", "tags": ["creative-sync"], "timezone": "browser",
            "schemaVersion": 39, "version": 1, "refresh": "10s", "time": {"from": "now-1h", "to": "now"}, "panels": panels}


HEADER = ("# Generated by `creative-sync k8s` from topics/catalogue.py and creative_sync/manifests.py: edit those,\n"
          "# not this file (tests/unit/test_deployment.py fails when they differ).\n")


def documents(cluster: Cluster = Cluster()) -> dict[str, list[Doc]]:
    return {"topics.yaml": topics(cluster), "creative-sync.yaml": workload(cluster), "monitoring.yaml": alerts(cluster)}


def render(docs: list[Doc]) -> str:
    return HEADER + yaml.safe_dump_all(docs, sort_keys=False, width=120)


def files(cluster: Cluster = Cluster()) -> dict[str, str]:
    """Every generated file (path under k8s/ -> text): the manifests, and the compose file's alerts and dashboard."""
    out = {name: render(docs) for name, docs in documents(cluster).items()}
    out["compose/alerts.yml"] = HEADER + yaml.safe_dump(rule_groups(), sort_keys=False, width=120)
    out["grafana/creative-sync.json"] = json.dumps(dashboard(), indent=2) + "\n"
    return out


def write(out: Path, cluster: Cluster = Cluster()) -> list[Path]:
    written = []
    for name, text in files(cluster).items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
        written.append(out / name)
    return written
