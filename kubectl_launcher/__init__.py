"""kubectl-launcher: NVFlare jobs as Kubernetes pods, driven by the kubectl binary."""
