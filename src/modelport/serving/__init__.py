"""Online serving: one ASGI app speaking V2, TF-Serving-style and MLflow-style protocols."""

from modelport.serving.app import create_app
from modelport.serving.deployment import Deployment, ModelSpec, load_deployment
from modelport.serving.server import serve

__all__ = ["Deployment", "ModelSpec", "create_app", "load_deployment", "serve"]
