"""Running modelport on a cluster: Kubernetes manifests and a KServe serving runtime.

:mod:`modelport.deploy.k8s` builds the objects as plain dicts; the CLI (``modelport k8s``)
prints them as YAML. Nothing here talks to a cluster.
"""
