"""Workloads: manifests, datasets, and the runners that train and score models."""
