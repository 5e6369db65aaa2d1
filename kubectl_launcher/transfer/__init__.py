"""The workspace transfer: delivery into the pod, collection of results, the lease, the pod-side scripts,
and the checks every result archive passes."""
