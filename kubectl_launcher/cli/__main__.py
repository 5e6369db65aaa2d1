"""`python -m kubectl_launcher.cli`: the same as the `kubectl-launcher` command."""

import sys

from kubectl_launcher.cli import main

sys.exit(main())
