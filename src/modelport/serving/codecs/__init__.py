"""Wire codecs: bytes and headers in, canonical arrays out, and back; no web framework."""
