"""Kubernetes and KServe manifests for serving a model, as plain dicts.

Two shapes, both printed by ``modelport k8s``:

- **plain** (:func:`plain_manifests`): a ``Deployment`` whose pods run ``modelport serve REF``
  against the shared registry (``MODELPORT_REGISTRY_URI`` from a Secret, so they follow alias
  moves and check API keys), a ``Service``, a ``HorizontalPodAutoscaler`` (``autoscaling/v2``,
  CPU) and a ``PodDisruptionBudget`` (``policy/v1``);
- **KServe** (:func:`kserve_manifests`): a ``ClusterServingRuntime`` that serves the folder
  KServe's storage initializer fills (``modelport serve /mnt/models --name {{.Name}}``) for
  every modelport flavor, and an ``InferenceService`` that uses it for one model.

Every pod runs under the restricted Pod Security Standard: a non-root uid, a read-only root
filesystem (emptyDir volumes for ``/tmp`` and ``MODELPORT_HOME``), no privilege escalation,
all capabilities dropped, the runtime's default seccomp profile. ``docs/kubernetes.md`` walks
through both paths. The objects are checked against Kubernetes' schemas and KServe's CRDs in
``tests/integration/test_k8s_manifests.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from modelport.errors import InvalidInput
from modelport.flavors import flavor_names
from modelport.ref import ModelRef
from modelport.registry import Registry

# Any: a manifest is a JSON-like tree whose value types depend on the field.
Manifest = dict[str, Any]

DRAIN_SECONDS = 30
"""How long ``modelport serve`` lets in-flight requests finish after SIGTERM (uvicorn's
graceful timeout, ``GRACEFUL_SECONDS`` in :mod:`modelport.serving.server`; a test keeps the
two equal without this module importing the server)."""

PRE_STOP_SECONDS = 10
"""How long a stopping pod keeps serving before it gets SIGTERM: endpoints controllers, kube-proxy
and load balancers take a few seconds to stop sending it new requests."""

GRACE_SECONDS = PRE_STOP_SECONDS + DRAIN_SECONDS + 5
"""``terminationGracePeriodSeconds``: the preStop sleep, the drain, and a margin for exiting.
Kubernetes counts the preStop hook inside this period."""

KSERVE_PORT = 8080
"""The port KServe expects a runtime's ``kserve-container`` to listen on."""

KSERVE_MODEL_DIR = "/mnt/models"
"""Where KServe's storage initializer puts the files under ``storageUri``. The same folder as
:data:`modelport.serving.deployment.KSERVE_MODEL_DIR` (where ``serve`` looks for a remote
``STORAGE_URI``), kept apart so that printing manifests needs no server import; the runtime
test fails if the two differ."""

RUNTIME_NAME = "modelport"
"""The default name of the ``ClusterServingRuntime``."""

DEFAULT_SECRET = "modelport"
"""The default name of the Secret holding the registry URI and credentials."""

UID = 10001
"""The uid (and gid) the pods run as: any non-root one works, the image's files are
world-readable; a number, so that the kubelet can check ``runAsNonRoot``."""

HOME = "/var/lib/modelport"
"""``MODELPORT_HOME`` inside the pod: an emptyDir, so the S3 artifact cache lives there."""

SECRET_ENV: tuple[tuple[str, str, bool], ...] = (
    ("MODELPORT_REGISTRY_URI", "registry-uri", False),
    ("PGPASSWORD", "pgpassword", True),
    ("AWS_ACCESS_KEY_ID", "aws-access-key-id", True),
    ("AWS_SECRET_ACCESS_KEY", "aws-secret-access-key", True),
    ("AWS_ENDPOINT_URL", "aws-endpoint-url", True),
)
"""The environment read from the Secret: (variable, key, optional). The registry holds the
API keys, so with auth on a pod without ``registry-uri`` could not check one."""

_DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|Pi|Ei|M|G|T|P|E)?")


@dataclass(frozen=True, kw_only=True)
class Resources:
    """What each pod asks for. The memory limit equals the request unless given (a pod over
    its request is the first one evicted); no CPU limit unless given (a limit throttles
    a server that could use an idle core)."""

    cpu: str = "1"
    memory: str = "2Gi"
    cpu_limit: str | None = None
    memory_limit: str | None = None

    def manifest(self) -> Manifest:
        """The container's ``resources`` field."""
        for value in (self.cpu, self.memory, self.cpu_limit, self.memory_limit):
            if value is not None and not _QUANTITY.fullmatch(value):
                raise InvalidInput(f"{value!r} is not a Kubernetes quantity (e.g. 500m, 2Gi)")
        limits = {"memory": self.memory_limit or self.memory}
        if self.cpu_limit is not None:
            limits["cpu"] = self.cpu_limit
        return {"requests": {"cpu": self.cpu, "memory": self.memory}, "limits": limits}


@dataclass(frozen=True, slots=True)
class ModelSource:
    """What the manifests need to know about the model a ref names."""

    name: str
    """Its registry name (a path's: the manifest's)."""
    flavor: str
    storage_uri: str | None
    """Where its artifact folder is, when KServe's storage initializer can fetch it there (an
    S3 artifact store); None otherwise."""


def find_model(
    registry: Registry, ref: str, artifact_uri: str, *, allow_path: bool = True
) -> ModelSource:
    """Resolve ``ref`` (a registry ref, or an artifact folder or bundle) for its name and flavor.

    ``artifact_uri`` is the registry's artifact store: an ``s3://`` one gives a registry
    version's ``storage_uri`` (the version's prefix in the bucket). ``allow_path=False``
    refuses a path, which pods resolving the ref in the registry could not find.
    """
    parsed = ModelRef.parse(ref)
    if parsed.path is not None and not allow_path:
        raise _path_refused(ref)
    if parsed.path is not None:
        manifest = registry.manifest(parsed)
        return ModelSource(manifest.name, manifest.flavor, None)
    version = registry.resolve(parsed)
    storage_uri = None
    if artifact_uri.startswith("s3://"):
        storage_uri = f"{artifact_uri.rstrip('/')}/{version.artifact_key}"
    return ModelSource(version.name, version.flavor or "", storage_uri)


def k8s_name(text: str) -> str:
    """``text`` as a Kubernetes object name (a DNS-1035 label): lower case, ``_`` and ``.``
    as ``-``. Raises InvalidInput when that is still no valid name."""
    return _checked_name(text.lower().replace("_", "-").replace(".", "-"), text)


def _checked_name(name: str, given: str | None = None) -> str:
    if len(name) > 63 or not _DNS_LABEL.fullmatch(name):
        raise InvalidInput(
            f"{given or name!r} is no Kubernetes name (lower-case letters, digits and '-', "
            "starting with a letter, at most 63 characters); give one with --name"
        )
    return name


def to_yaml(manifests: Iterable[Manifest]) -> str:
    """The manifests as one multi-document YAML text, fields in the order they were built."""
    return yaml.safe_dump_all(list(manifests), sort_keys=False, default_flow_style=False)


def plain_manifests(
    ref: str,
    *,
    image: str,
    name: str,
    namespace: str | None = None,
    port: int = 8000,
    replicas: int = 2,
    max_replicas: int | None = None,
    target_cpu_percent: int = 70,
    secret: str = DEFAULT_SECRET,
    artifact_uri: str | None = None,
    resources: Resources = Resources(),
) -> list[Manifest]:
    """A Deployment running ``modelport serve REF``, its Service, HPA and PDB.

    ``ref`` is served as given, so a ``name@alias`` follows the alias's moves. The registry
    URI and credentials come from the Secret ``secret``; ``artifact_uri`` (e.g.
    ``s3://bucket/prefix``) is written as a value, or read from the Secret's ``artifact-uri``
    key when None.

    >>> docs = plain_manifests("churn@production", image="reg.example/churn:3", name="churn")
    >>> [d["kind"] for d in docs]
    ['Deployment', 'Service', 'HorizontalPodAutoscaler', 'PodDisruptionBudget']
    """
    if ModelRef.parse(ref).path is not None:
        raise _path_refused(ref)
    _checked_name(name)
    _check_counts(replicas, max_replicas, minimum=1)
    if not 1 <= port <= 65535:
        raise InvalidInput(f"port {port} is not between 1 and 65535")
    labels = _labels(name)
    env = [
        *_secret_env(secret),
        {"name": "MODELPORT_HOME", "value": HOME},
        {"name": "MODELPORT_SERVING__AUTH", "value": "true"},
        _artifact_env(artifact_uri, secret),
    ]
    container = _container(
        "modelport",
        image,
        ["serve", ref, "--host", "0.0.0.0", "--port", str(port)],
        port=port,
        env=env,
        resources=resources,
    )
    pod = _pod_spec(container)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(name, namespace, labels, {"modelport.io/ref": ref}),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": _selector(name)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": labels, "annotations": _scrape_annotations(port)},
                "spec": pod,
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(name, namespace, labels),
        "spec": {
            "type": "ClusterIP",
            "selector": _selector(name),
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(name, namespace, labels),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": replicas,
            "maxReplicas": max_replicas or max(replicas, 2 * replicas),
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": target_cpu_percent},
                    },
                }
            ],
        },
    }
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(name, namespace, labels),
        # maxUnavailable, not minAvailable: a drain of one node may always evict one pod,
        # even at one replica, instead of blocking the node forever.
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _selector(name)}},
    }
    return [deployment, service, hpa, pdb]


def kserve_manifests(
    model: ModelSource,
    *,
    image: str,
    name: str,
    storage_uri: str | None = None,
    runtime: str = RUNTIME_NAME,
    namespace: str | None = None,
    min_replicas: int = 1,
    max_replicas: int | None = None,
    canary_percent: int | None = None,
    auth: bool = False,
    secret: str = DEFAULT_SECRET,
    resources: Resources = Resources(),
) -> list[Manifest]:
    """The ClusterServingRuntime (every known flavor) and an InferenceService for ``model``."""
    uri = storage_uri or model.storage_uri
    if uri is None:
        raise InvalidInput(
            "KServe fetches the model from a storageUri: give --storage-uri (the artifact "
            "store is not S3, so the version's own location cannot serve as one)"
        )
    if not model.flavor:
        raise InvalidInput(f"model {model.name!r} records no flavor")
    return [
        serving_runtime(
            flavor_names(),
            image=image,
            name=runtime,
            auth=auth,
            secret=secret,
            resources=resources,
        ),
        inference_service(
            name,
            flavor=model.flavor,
            storage_uri=uri,
            runtime=runtime,
            namespace=namespace,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            canary_percent=canary_percent,
        ),
    ]


def serving_runtime(
    flavors: Iterable[str],
    *,
    image: str,
    name: str = RUNTIME_NAME,
    auth: bool = False,
    secret: str = DEFAULT_SECRET,
    resources: Resources = Resources(),
) -> Manifest:
    """A ClusterServingRuntime serving ``/mnt/models`` as the InferenceService's name.

    Without ``auth`` the server runs with ``--insecure-no-auth``: KServe's ingress, mesh and
    network policies decide who may call it, and the pod needs no registry. With ``auth`` the
    registry URI comes from the Secret ``secret`` and every call needs a modelport API key.
    """
    _checked_name(name)
    args = [
        "serve",
        KSERVE_MODEL_DIR,
        "--name",
        "{{.Name}}",
        "--host",
        "0.0.0.0",
        "--port",
        str(KSERVE_PORT),
    ]
    env: list[Manifest] = [{"name": "MODELPORT_HOME", "value": "/tmp/modelport"}]
    if auth:
        env = [*_secret_env(secret), *env, {"name": "MODELPORT_SERVING__AUTH", "value": "true"}]
    else:
        args.append("--insecure-no-auth")
    container = _container(
        "kserve-container",
        image,
        args,
        port=KSERVE_PORT,
        env=env,
        resources=resources,
        knative=True,
    )
    # spec.annotations go onto the predictor pods: KServe's metrics aggregation reads
    # prometheus.kserve.io/*, a plain Prometheus reads prometheus.io/*.
    annotations = {
        "prometheus.kserve.io/port": str(KSERVE_PORT),
        "prometheus.kserve.io/path": "/metrics",
        **_scrape_annotations(KSERVE_PORT),
    }
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ClusterServingRuntime",
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/managed-by": "modelport"},
            "annotations": {"serving.kserve.io/server-type": "modelport"},
        },
        "spec": {
            "annotations": annotations,
            # autoSelect without a priority: an InferenceService that names no runtime gets
            # a built-in one with a priority first (kserve-sklearnserver for sklearn), which
            # cannot read a modelport artifact. Name the runtime, as the example does.
            "supportedModelFormats": [{"name": f, "autoSelect": True} for f in flavors],
            # v2 only: the TF-Serving-style :predict route is KServe's v1 predict, but v1's
            # model status (GET /v1/models/NAME -> {"name", "ready"}) is TF Serving's here.
            "protocolVersions": ["v2"],
            "containers": [container],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        },
    }


def inference_service(
    name: str,
    *,
    flavor: str,
    storage_uri: str,
    runtime: str = RUNTIME_NAME,
    namespace: str | None = None,
    min_replicas: int = 1,
    max_replicas: int | None = None,
    canary_percent: int | None = None,
) -> Manifest:
    """An InferenceService serving the artifact folder at ``storage_uri`` with ``runtime``.

    ``min_replicas`` 0 lets it scale to zero, which (like ``canary_percent``) only KServe's
    Knative mode does; either sets the ``serving.kserve.io/deploymentMode: Knative``
    annotation. The model is served under ``name`` (KServe's ``{{.Name}}``).
    """
    _checked_name(name)
    _check_counts(min_replicas, max_replicas, minimum=0)
    if canary_percent is not None and not 0 <= canary_percent <= 100:
        raise InvalidInput(f"canary percent {canary_percent} is not between 0 and 100")
    annotations = {}
    if min_replicas == 0 or canary_percent is not None:
        annotations["serving.kserve.io/deploymentMode"] = "Knative"
    predictor: Manifest = {
        "minReplicas": min_replicas,
        **({"maxReplicas": max_replicas} if max_replicas is not None else {}),
        **({"canaryTrafficPercent": canary_percent} if canary_percent is not None else {}),
        "model": {
            "modelFormat": {"name": flavor},
            "runtime": runtime,
            "protocolVersion": "v2",
            "storageUri": storage_uri,
        },
    }
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": _metadata(name, namespace, _labels(name), annotations or None),
        "spec": {"predictor": predictor},
    }


def _path_refused(ref: str) -> InvalidInput:
    return InvalidInput(
        f"{ref!r} is a path: the pods resolve REF in the registry, so name a registered "
        "version (or use --kserve, which serves a folder from a storageUri)"
    )


def _check_counts(low: int, high: int | None, *, minimum: int) -> None:
    if low < minimum:
        raise InvalidInput(f"replicas must be at least {minimum}, not {low}")
    if high is not None and high < max(low, 1):
        raise InvalidInput(f"max replicas {high} is below the minimum {max(low, 1)}")


def _labels(name: str) -> dict[str, str]:
    return {
        **_selector(name),
        "app.kubernetes.io/component": "model-server",
        "app.kubernetes.io/managed-by": "modelport",
    }


def _selector(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name}


def _metadata(
    name: str,
    namespace: str | None,
    labels: Mapping[str, str],
    annotations: Mapping[str, str] | None = None,
) -> Manifest:
    meta: Manifest = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def _scrape_annotations(port: int) -> dict[str, str]:
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(port),
        "prometheus.io/path": "/metrics",
    }


def _secret_env(secret: str) -> list[Manifest]:
    env = []
    for variable, key, optional in SECRET_ENV:
        ref: Manifest = {"name": secret, "key": key}
        if optional:
            ref["optional"] = True
        env.append({"name": variable, "valueFrom": {"secretKeyRef": ref}})
    return env


def _artifact_env(artifact_uri: str | None, secret: str) -> Manifest:
    if artifact_uri is not None:
        return {"name": "MODELPORT_ARTIFACT_URI", "value": artifact_uri}
    ref = {"name": secret, "key": "artifact-uri"}
    return {"name": "MODELPORT_ARTIFACT_URI", "valueFrom": {"secretKeyRef": ref}}


def _container(
    name: str,
    image: str,
    args: list[str],
    *,
    port: int,
    env: list[Manifest],
    resources: Resources,
    knative: bool = False,
) -> Manifest:
    """The server container: probes, the drain, the restricted securityContext.

    ``knative``: a KServe runtime's container, which Knative may run. Knative refuses
    ``lifecycle`` and a named port other than ``http1``, and drains through its own
    queue-proxy; there the readiness probe alone holds traffic back until the model loads
    (a liveness probe could restart a pod still loading one)."""
    if not image.strip():
        raise InvalidInput("the image must not be empty")
    target: int | str = port if knative else "http"

    def probe(path: str, period: int, timeout: int, failures: int) -> Manifest:
        return {
            "httpGet": {"path": path, "port": target},
            "periodSeconds": period,
            "timeoutSeconds": timeout,
            "failureThreshold": failures,
        }

    container: Manifest = {"name": name, "image": image, "args": args}
    if knative:
        container["ports"] = [{"containerPort": port, "protocol": "TCP"}]
    else:
        container["ports"] = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    container["env"] = env
    container["resources"] = resources.manifest()
    if knative:
        container["readinessProbe"] = probe("/v2/health/ready", 5, 3, 3)
    else:
        # Loading a model (an S3 download, a large framework) may take minutes: the startup
        # probe gives it five before the liveness probe may restart the pod.
        container["startupProbe"] = probe("/v2/health/live", 5, 3, 60)
        container["livenessProbe"] = probe("/v2/health/live", 10, 5, 3)
        container["readinessProbe"] = probe("/v2/health/ready", 5, 3, 2)
        # Keep serving while the pod is taken out of the Service's endpoints; SIGTERM then
        # starts the server's drain, and the grace period covers both.
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": PRE_STOP_SECONDS}}}
    container["securityContext"] = {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    mounts = [{"name": "tmp", "mountPath": "/tmp"}]
    if not knative:
        mounts.append({"name": "home", "mountPath": HOME})
    container["volumeMounts"] = mounts
    return container


def _pod_spec(container: Manifest) -> Manifest:
    return {
        "terminationGracePeriodSeconds": GRACE_SECONDS,
        # The server never calls the Kubernetes API: no token in the pod.
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": UID,
            "runAsGroup": UID,
            "fsGroup": UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {"name": "tmp", "emptyDir": {}},
            {"name": "home", "emptyDir": {}},
        ],
    }
