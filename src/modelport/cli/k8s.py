"""Kubernetes and KServe manifests for a model, printed as YAML."""

from __future__ import annotations

from importlib.metadata import version as _dist_version
from typing import Annotated

import typer

from modelport.cli._shared import open_registry, out, state
from modelport.deploy.k8s import (
    DEFAULT_SECRET,
    RUNTIME_NAME,
    Resources,
    find_model,
    k8s_name,
    kserve_manifests,
    plain_manifests,
    to_yaml,
)
from modelport.errors import InvalidInput


def k8s(
    ref: Annotated[
        str,
        typer.Argument(help="NAME, NAME/3 or NAME@ALIAS (with --kserve also a path)."),
    ],
    image: Annotated[
        str | None,
        typer.Option(
            help="Image whose entrypoint is modelport (docs/kubernetes.md) \\[default with "
            "--kserve: modelport:VERSION].",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(help="Object name \\[default: the model's name, as a Kubernetes name]."),
    ] = None,
    namespace: Annotated[str | None, typer.Option(help="Namespace of every object.")] = None,
    replicas: Annotated[int, typer.Option(help="Replicas (the HPA's minimum).")] = 2,
    min_replicas: Annotated[
        int, typer.Option(help="--kserve: minimum replicas; 0 scales to zero (Knative mode).")
    ] = 1,
    max_replicas: Annotated[
        int | None,
        typer.Option(help="Most replicas the autoscaler adds \\[default: 2 x --replicas]."),
    ] = None,
    port: Annotated[int, typer.Option(help="Port the server listens on.")] = 8000,
    cpu: Annotated[str, typer.Option(help="CPU request of each pod.")] = "1",
    memory: Annotated[str, typer.Option(help="Memory request (and limit) of each pod.")] = "2Gi",
    cpu_limit: Annotated[str | None, typer.Option(help="CPU limit \\[default: none].")] = None,
    secret: Annotated[
        str,
        typer.Option(help="Secret with registry-uri, pgpassword, aws-* keys (docs/kubernetes.md)."),
    ] = DEFAULT_SECRET,
    artifact_uri: Annotated[
        str | None,
        typer.Option(
            help="MODELPORT_ARTIFACT_URI of the pods \\[default: the Secret's artifact-uri]."
        ),
    ] = None,
    kserve: Annotated[
        bool, typer.Option("--kserve", help="A KServe ClusterServingRuntime and InferenceService.")
    ] = False,
    storage_uri: Annotated[
        str | None,
        typer.Option(
            help="--kserve: the artifact folder's URI \\[default: the version's S3 prefix]."
        ),
    ] = None,
    runtime: Annotated[str, typer.Option(help="--kserve: the runtime's name.")] = RUNTIME_NAME,
    canary_percent: Annotated[
        int | None,
        typer.Option(help="--kserve: canaryTrafficPercent, traffic for the new revision."),
    ] = None,
    kserve_auth: Annotated[
        bool,
        typer.Option(
            "--kserve-auth",
            help="--kserve: keep API keys on, with the registry URI from --secret.",
        ),
    ] = False,
) -> None:
    """Print Kubernetes manifests (or a KServe runtime) that serve a model, as YAML.

    Plain: a Deployment running `modelport serve REF` (probes, drain, restricted
    securityContext, Secret references), a Service, an HPA and a PodDisruptionBudget.
    --kserve: a ClusterServingRuntime for every flavor and an InferenceService for this model.
    REF is read in the registry for its name and flavor. Apply with `kubectl apply -f -`.
    """
    if not kserve and image is None:
        raise InvalidInput("--image is required: the image the pods run (docs/kubernetes.md)")
    with open_registry() as reg:
        model = find_model(reg, ref, state.settings.resolved_artifact_uri(), allow_path=kserve)
    name = name or k8s_name(model.name)
    resources = Resources(cpu=cpu, memory=memory, cpu_limit=cpu_limit)
    if kserve:
        docs = kserve_manifests(
            model,
            image=image or f"modelport:{_dist_version('modelport')}",
            name=name,
            storage_uri=storage_uri,
            runtime=runtime,
            namespace=namespace,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            canary_percent=canary_percent,
            auth=kserve_auth,
            secret=secret,
            resources=resources,
        )
    else:
        docs = plain_manifests(
            ref,
            image=image or "",
            name=name,
            namespace=namespace,
            port=port,
            replicas=replicas,
            max_replicas=max_replicas,
            secret=secret,
            artifact_uri=artifact_uri,
            resources=resources,
        )
    out.print(to_yaml(docs), markup=False, highlight=False, emoji=False, end="")
