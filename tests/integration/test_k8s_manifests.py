"""``modelport k8s``: the manifests it prints are valid for the cluster that reads them.

Built-in kinds pass ``kubernetes-validate --strict`` (its bundled schemas, pinned to one
Kubernetes version, no network). KServe's kinds pass a strict JSON-schema check against
KServe's own CRDs, vendored from a pinned release (``tests/data/kserve/README.md``):
kubernetes-validate only warns on a kind it does not know, so it cannot be that check. The
CRD schemas are made strict the way the API server's strict field validation is: an object
allows fields it does not list only where the CRD says ``x-kubernetes-preserve-unknown-fields``.
Each kind also has a broken copy (a wrong type, an unknown field) that the check must refuse.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import numpy as np
import pytest
import yaml
from sklearn.linear_model import LogisticRegression

import modelport
from modelport.deploy import k8s
from modelport.flavors import flavor_names
from modelport.serving.server import GRACEFUL_SECONDS

from ._cli import cli

K8S_VERSION = "1.31.0"
"""The Kubernetes version the built-in kinds are checked against (preStop's ``sleep`` action
needs 1.30 or newer)."""

KSERVE_CRDS = Path(__file__).parents[1] / "data" / "kserve"
CRD_FILES = {
    "ClusterServingRuntime": "serving.kserve.io_clusterservingruntimes.yaml",
    "InferenceService": "serving.kserve.io_inferenceservices.yaml",
}

Doc = dict[str, Any]  # Any: a manifest is a JSON-like tree


# -- the checks ----------------------------------------------------------------------------


def strict(schema: Doc) -> Doc:
    """A CRD's OpenAPI v3 schema as a JSON schema that refuses fields it does not list."""
    out = dict(schema)
    if "properties" in out:
        out["properties"] = {key: strict(value) for key, value in out["properties"].items()}
    for key in ("items", "additionalProperties", "not"):
        if isinstance(out.get(key), dict):
            out[key] = strict(out[key])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in out:
            out[key] = [strict(each) for each in out[key]]
    if out.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    preserve = out.get("x-kubernetes-preserve-unknown-fields") is True
    if out.get("type") == "object" and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


@cache
def crd_validator(kind: str) -> tuple[str, jsonschema.protocols.Validator]:
    """The apiVersion the CRD serves for ``kind``, and a strict validator of its schema."""
    with (KSERVE_CRDS / CRD_FILES[kind]).open() as file:
        crd = yaml.load(file, Loader=yaml.CSafeLoader)
    assert crd["spec"]["names"]["kind"] == kind
    (served,) = [v for v in crd["spec"]["versions"] if v["served"] and v["storage"]]
    schema = strict(served["schema"]["openAPIV3Schema"])
    # The API server checks metadata as an ObjectMeta whatever the CRD says: check_kserve
    # sends it through Kubernetes' own schema instead.
    schema["properties"]["metadata"] = {"type": "object"}
    schema["required"] = ["apiVersion", "kind", "metadata", "spec"]
    api_version = f"{crd['spec']['group']}/{served['name']}"
    return api_version, jsonschema.Draft202012Validator(schema)


def check_builtin(doc: Doc) -> None:
    """``kubernetes-validate --strict`` on one object; raises its ValidationError."""
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def check_kserve(doc: Doc) -> None:
    """The CRD's schema, strict, on one KServe object; raises a ValidationError."""
    api_version, validator = crd_validator(doc["kind"])
    if doc["apiVersion"] != api_version:
        raise jsonschema.ValidationError(f"apiVersion {doc['apiVersion']} is not {api_version}")
    validator.validate(doc)
    check_builtin({"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc["metadata"]})


def check(doc: Doc) -> None:
    if doc["kind"] in CRD_FILES:
        check_kserve(doc)
    else:
        check_builtin(doc)


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """churn_model/1, an sklearn model aliased production."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    home = tmp_path / "home"
    monkeypatch.setenv("MODELPORT_HOME", str(home))
    with modelport.Registry(modelport.Settings(home=home)) as registry:
        registry.register("churn_model", model, input_example=x[:2])
        registry.set_alias("churn_model", "production", 1)
    return home


def manifests(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Doc]:
    """``modelport k8s ARGS``, parsed: the objects by kind."""
    done = cli(capsys, "k8s", *args)
    assert done.code == 0, done.err
    docs = list(yaml.safe_load_all(done.out))
    by_kind = {doc["kind"]: doc for doc in docs}
    assert len(by_kind) == len(docs)
    return by_kind


def plain(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Doc]:
    image = "registry.example.com/churn:3"
    return manifests(capsys, "churn_model@production", "--image", image, *args)


def kserve(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Doc]:
    uri = "s3://ml-models/prod/churn/3"
    return manifests(capsys, "churn_model@production", "--kserve", "--storage-uri", uri, *args)


# -- the plain path ------------------------------------------------------------------------


def test_plain_manifests_pass_kubernetes_validate_strict(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = plain(capsys, "--replicas", "3", "--namespace", "ml", "--cpu-limit", "2")
    assert list(docs) == ["Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"]
    for doc in docs.values():
        check_builtin(doc)
        assert doc["metadata"]["name"] == "churn-model"
        assert doc["metadata"]["namespace"] == "ml"
    assert docs["HorizontalPodAutoscaler"]["spec"]["minReplicas"] == 3
    assert docs["HorizontalPodAutoscaler"]["spec"]["maxReplicas"] == 6


def test_the_deployment_probes_drains_and_runs_restricted(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deployment = plain(capsys, "--port", "9000")["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["serve", "churn_model@production", "--host", "0.0.0.0",
                                 "--port", "9000"]  # fmt: skip
    assert container["ports"] == [{"name": "http", "containerPort": 9000, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/v2/health/live"
    # The grace period covers the preStop sleep, then the server's whole drain.
    assert k8s.DRAIN_SECONDS == GRACEFUL_SECONDS
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pre_stop + GRACEFUL_SECONDS
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsUser"] != 0
    # The only writable places: emptyDirs for /tmp and MODELPORT_HOME (the S3 cache).
    env = {e["name"]: e for e in container["env"]}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"/tmp", env["MODELPORT_HOME"]["value"]}
    assert all("emptyDir" in volume for volume in pod["volumes"])
    assert container["resources"]["requests"] == {"cpu": "1", "memory": "2Gi"}
    assert container["resources"]["limits"] == {"memory": "2Gi"}
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9000",
        "prometheus.io/path": "/metrics",
    }


def test_the_registry_and_credentials_come_from_the_named_secret(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = plain(capsys, "--secret", "churn-registry", "--artifact-uri", "s3://ml-models/prod")
    (container,) = docs["Deployment"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    registry = env["MODELPORT_REGISTRY_URI"]["valueFrom"]["secretKeyRef"]
    assert registry == {"name": "churn-registry", "key": "registry-uri"}
    for variable in ("PGPASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        ref = env[variable]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "churn-registry"
        assert ref["optional"] is True
    assert env["MODELPORT_SERVING__AUTH"]["value"] == "true"
    assert env["MODELPORT_ARTIFACT_URI"] == {
        "name": "MODELPORT_ARTIFACT_URI",
        "value": "s3://ml-models/prod",
    }
    # No secret value is ever written into the manifests.
    secret_names = {variable for variable, _, _ in k8s.SECRET_ENV}
    assert all("value" not in e for e in container["env"] if e["name"] in secret_names)
    default = plain(capsys)["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]
    artifact = {e["name"]: e for e in default}["MODELPORT_ARTIFACT_URI"]
    assert artifact["valueFrom"]["secretKeyRef"] == {"name": "modelport", "key": "artifact-uri"}


# -- the KServe path -----------------------------------------------------------------------


def test_kserve_objects_pass_kserves_crds(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = kserve(capsys, "--image", "registry.example.com/modelport:0.1.0")
    assert list(docs) == ["ClusterServingRuntime", "InferenceService"]
    for doc in docs.values():
        check_kserve(doc)
    runtime = docs["ClusterServingRuntime"]["spec"]
    (container,) = runtime["containers"]
    assert container["name"] == "kserve-container"
    assert container["image"] == "registry.example.com/modelport:0.1.0"
    assert container["args"] == [
        "serve", "/mnt/models", "--name", "{{.Name}}", "--host", "0.0.0.0", "--port", "8080",
        "--insecure-no-auth",
    ]  # fmt: skip
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    formats = runtime["supportedModelFormats"]
    assert [f["name"] for f in formats] == flavor_names()
    assert {"sklearn", "xgboost", "lightgbm", "onnx", "catboost", "torch", "keras",
            "tensorflow", "pyfunc"} <= {f["name"] for f in formats}  # fmt: skip
    assert all(f["autoSelect"] is True for f in formats)
    assert runtime["protocolVersions"] == ["v2"]
    assert runtime["annotations"]["prometheus.kserve.io/port"] == "8080"
    assert runtime["annotations"]["prometheus.kserve.io/path"] == "/metrics"
    isvc = docs["InferenceService"]
    assert isvc["metadata"]["name"] == "churn-model"
    assert "annotations" not in isvc["metadata"]  # the cluster's default deployment mode
    predictor = isvc["spec"]["predictor"]
    assert predictor["minReplicas"] == 1
    assert predictor["model"] == {
        "modelFormat": {"name": "sklearn"},
        "runtime": "modelport",
        "protocolVersion": "v2",
        "storageUri": "s3://ml-models/prod/churn/3",
    }


def test_scale_to_zero_and_canary_ask_for_knative_mode(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = kserve(capsys, "--min-replicas", "0", "--max-replicas", "4", "--canary-percent", "10")
    isvc = docs["InferenceService"]
    check_kserve(isvc)
    assert isvc["metadata"]["annotations"] == {"serving.kserve.io/deploymentMode": "Knative"}
    predictor = isvc["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (0, 4)
    assert predictor["canaryTrafficPercent"] == 10


def test_kserve_auth_keeps_api_keys_on(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runtime = kserve(capsys, "--kserve-auth", "--secret", "reg")["ClusterServingRuntime"]
    check_kserve(runtime)
    (container,) = runtime["spec"]["containers"]
    assert "--insecure-no-auth" not in container["args"]
    env = {e["name"]: e for e in container["env"]}
    assert env["MODELPORT_REGISTRY_URI"]["valueFrom"]["secretKeyRef"] == {
        "name": "reg",
        "key": "registry-uri",
    }
    assert env["MODELPORT_SERVING__AUTH"]["value"] == "true"


def test_an_s3_store_gives_the_versions_own_storage_uri(home: Path) -> None:
    with modelport.Registry(modelport.Settings(home=home)) as registry:
        found = k8s.find_model(registry, "churn_model@production", "s3://ml-models/prod/")
        key = registry.resolve("churn_model@production").artifact_key
        local = k8s.find_model(registry, "churn_model", str(home / "artifacts"))
    assert (found.name, found.flavor) == ("churn_model", "sklearn")
    assert found.storage_uri == f"s3://ml-models/prod/{key}"
    assert local.storage_uri is None
    isvc = k8s.kserve_manifests(found, image="m:1", name="churn")[1]
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == found.storage_uri


# -- a broken field fails the check --------------------------------------------------------

TYPE = "is not of type"
UNKNOWN = "was unexpected"
BROKEN: list[tuple[str, str, object, str]] = [
    ("Deployment", "spec.replicas", "three", TYPE),
    ("Deployment", "spec.template.spec.containers.0.imagePullPolcy", "Always", UNKNOWN),
    ("Service", "spec.ports.0.port", "http", TYPE),
    ("Service", "spec.selectr", {}, UNKNOWN),
    ("HorizontalPodAutoscaler", "spec.maxReplicas", "4", TYPE),
    ("HorizontalPodAutoscaler", "spec.targetCPU", 70, UNKNOWN),
    ("PodDisruptionBudget", "spec.selector.matchLabels", ["a"], TYPE),
    ("PodDisruptionBudget", "spec.minAvailabe", 1, UNKNOWN),
    ("ClusterServingRuntime", "spec.supportedModelFormats.0.autoSelect", "yes", TYPE),
    ("ClusterServingRuntime", "spec.containers.0.argz", [], UNKNOWN),
    ("ClusterServingRuntime", "metadata.labelz", {}, UNKNOWN),
    ("InferenceService", "spec.predictor.minReplicas", "zero", TYPE),
    ("InferenceService", "spec.predictor.model.modelFormatName", "sklearn", UNKNOWN),
    (
        "InferenceService",
        "apiVersion",
        "serving.kserve.io/v1alpha1",
        "is not serving.kserve.io/v1beta1",
    ),
]


def put(doc: Doc, path: str, value: object) -> None:
    *parents, last = path.split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[last] = value


@pytest.mark.parametrize(("kind", "path", "value", "error"), BROKEN)
def test_a_broken_field_fails_the_check(
    home: Path,
    capsys: pytest.CaptureFixture[str],
    kind: str,
    path: str,
    value: object,
    error: str,
) -> None:
    docs = {**plain(capsys), **kserve(capsys)}
    good = docs[kind]
    check(good)
    broken = copy.deepcopy(good)
    put(broken, path, value)
    with pytest.raises(jsonschema.ValidationError, match=error):
        check(broken)


# -- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["churn_model@production"], "--image is required"),
        (["./out/churn", "--image", "m:1"], "is a path"),
        (["churn_model", "--kserve"], "give --storage-uri"),
        (["churn_model", "--image", "m:1", "--name", "Churn_1"], "no Kubernetes name"),
        (["churn_model", "--image", "m:1", "--cpu", "lots"], "not a Kubernetes quantity"),
        (["churn_model", "--image", "m:1", "--max-replicas", "1", "--replicas", "2"], "below"),
        (["churn_model", "--kserve", "--storage-uri", "s3://b/p", "--min-replicas", "-1"],
         "at least 0"),
        (["nope", "--image", "m:1"], "nope"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_code(
    home: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    done = cli(capsys, "k8s", *args)
    assert done.code in (2, 3)
    assert done.err.startswith("error: ")
    assert message in done.err
    assert done.out == ""
