"""Wire formats that client and server share: bytes and headers in, arrays out, and back.

One module per protocol: :mod:`~modelport.protocol.v2` (the Open Inference Protocol) with
:mod:`~modelport.protocol.v2_client` and :mod:`~modelport.protocol.v2_binary` (Triton's binary
tensors), :mod:`~modelport.protocol.tfserving` and :mod:`~modelport.protocol.mlflow`. They need
numpy and orjson, and no web framework: ``modelport.client`` imports them without the server
(``modelport.serving`` holds the routes that call them). The MLflow codec builds DataFrames,
so it imports pandas when it first needs one.
"""
