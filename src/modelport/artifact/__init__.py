"""The artifact format on disk: manifest, signature, checksums, profile, bundles. No framework here."""
