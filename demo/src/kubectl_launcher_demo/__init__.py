"""Drives an NVFlare 2.9 POC deployment (server + 2 clients) through kubectl-launcher: the demo and e2e flow."""
