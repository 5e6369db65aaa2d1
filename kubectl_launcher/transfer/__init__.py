"""The workspace transfer, one responsibility a module (docs/design.md, Contract 7):

workspace.py   WorkspaceTransfer, the per-job object the handle sees: decorate / advance / close
delivery.py    the workspace into the pod: staging, kubectl cp, the listing check, placing it
collection.py  the results out: tar over kubectl exec, merged once checked; recover-results.sh
archive.py     where a result archive is checked (check_results), trees and pod listings
step.py        what a step knows, and the one bounded redo of a step (attempts, one total deadline)
lease.py       the init container's and the keeper's lease, renewed when due and around long copies
background.py  the threads: a step off the handle's thread, the lease renewer, progress lines
excludes.py    what of local/ is never sent
pod_side.py    pure: the settings, the init and keeper containers, their sh scripts, the commands
"""
