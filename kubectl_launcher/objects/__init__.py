"""Adapters over the kubectl seam: the Kubernetes objects of one launch, each owning its name and namespace."""
