"""modelport."""
