"""This tier drives the real kubectl against the local API double: its fixtures come from tests/support."""

from tests.support.cluster_fixtures import *  # noqa: F403
