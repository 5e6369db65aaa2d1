"""Pure domain logic: names, manifests, pod status and pending classification, the launch plan, NVFlare
arguments. No I/O: nothing here starts a process, reads the clock or touches the cluster."""
