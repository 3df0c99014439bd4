"""The artifact format on disk: manifest, signature, checksums, profile, bundles.

No framework is imported here; flavors build on top of this layer.
"""
