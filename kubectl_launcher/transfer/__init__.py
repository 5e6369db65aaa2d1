"""The workspace transfer, one responsibility a module (docs/design.md, Contract 7):

workspace.py   WorkspaceTransfer, the per-job object the handle sees: decorate / advance / close
delivery.py    the workspace into the pod: staged, one exec -i, checked in the pod, then placed
collection.py  the results out: tar over kubectl exec, merged once checked; recover-results.sh
archive.py     where a result archive is checked (check_results), trees and pod listings
step.py        what a step knows, and the one bounded redo of a step (attempts, one total deadline)
lease.py       a pod's lease: joins the site's, or (a pod without our labels) renewed by exec when due
site_lease.py  one kubectl annotate per interval renews the lease of every followed pod of the site
background.py  the threads: a step off the handle's thread, the lease renewer, progress lines
excludes.py    what of local/ is never sent
pod_side.py    pure: the settings, the init and keeper containers, their waiting scripts, the probe
pod_scripts.py pure: the delivery's and the collection's sh scripts and their argv
"""
