"""Watching served models: metrics, the prediction log, drift and accuracy from feedback."""
