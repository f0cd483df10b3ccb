"""Logging from Python (MLflow's fluent names, DVCLive's files) and reading runs back."""
