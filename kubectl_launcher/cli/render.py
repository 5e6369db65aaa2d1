"""`render JOB_FOLDER --site SITE`: the objects a launch of that job at that site would apply, offline."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from kubectl_launcher.cli import output
from kubectl_launcher.cli.options import EXIT_OK, EXIT_USAGE, fail
from kubectl_launcher.cli.site import (
    PLACEHOLDER_JOB_ID,
    default_settings,
    make_launcher,
    read_json,
    read_resources,
    render_launch,
)
from kubectl_launcher.errors import ConfigError

DESCRIPTION = """\
Print the exact objects a launch of the job in JOB_FOLDER (its meta.json) at SITE would apply: the
site's startup-kit Secret and the job's credential Secret (data redacted), then the pod as the
launcher writes it to manifest.json. Offline: no kubeconfig or cluster is needed. The launcher's
arguments come from --resources (the site's local/resources.json; default: the launcher's defaults).
Values only the running parent knows (its URLs, the job's tokens) are shown as <placeholders>.
"""


def _load_meta(folder: str) -> dict[str, Any]:
    path = folder if os.path.isfile(folder) else os.path.join(folder, "meta.json")
    meta = read_json(path)
    if not isinstance(meta, dict):
        raise ConfigError(f"{path}: meta.json must be a JSON object")
    return meta


def _cmd_render(ns: argparse.Namespace) -> int:
    try:
        meta = _load_meta(ns.job_folder)
        if ns.job_id:
            meta["job_id"] = ns.job_id
        site_workspace = ns.site_workspace
        if ns.resources:
            settings = read_resources(ns.resources)
            local = os.path.dirname(os.path.abspath(ns.resources))
            if site_workspace is None and os.path.basename(local) == "local":
                site_workspace = os.path.dirname(local)
        else:
            settings = default_settings(server=ns.server)
        launcher = make_launcher(settings)
        rendered = render_launch(
            launcher,
            meta,
            site=ns.site,
            server=settings.is_server,
            site_workspace=site_workspace,
            set_list=ns.set or (),
            exe_module=ns.exe_module,
        )
    except (ConfigError, RuntimeError, ValueError) as exc:
        return fail(f"cannot render the launch: {exc}", EXIT_USAGE)
    listing = {"apiVersion": "v1", "kind": "List", "items": rendered.objects()}
    sys.stdout.write(output.dump(listing, ns.output or "yaml"))
    if not meta.get("job_id") or meta.get("job_id") == PLACEHOLDER_JOB_ID:
        print(f"note: no job id in meta.json; shown with {PLACEHOLDER_JOB_ID} (pass --job-id)", file=sys.stderr)
    return EXIT_OK


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "render",
        help="print the objects a launch of a job at a site would apply (offline)",
        description=DESCRIPTION,
        epilog="exit codes: 0 rendered; 2 bad arguments, or meta.json / resources.json refused (the field is named)",
    )
    parser.add_argument("job_folder", metavar="JOB_FOLDER", help="the job's folder (holding meta.json) or meta.json")
    parser.add_argument("--site", required=True, help="the NVFlare site name (e.g. site-1, server)")
    parser.add_argument("--resources", metavar="FILE", help="the site's local/resources.json")
    parser.add_argument(
        "--site-workspace", metavar="DIR", help="the site's workspace (default: the folder above local/resources.json)"
    )
    parser.add_argument("--server", action="store_true", help="without --resources: render a server launch")
    parser.add_argument("--job-id", help="the NVFlare job id (default: meta.json's job_id, else a placeholder)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="the parent's --set options (repeatable)")
    parser.add_argument("--exe-module", help=argparse.SUPPRESS)  # a custom job module, as tests launch one
    output_group = parser.add_argument_group("output")
    output_group.add_argument(
        "-o", "--output", choices=("yaml", "json"), help="yaml (default) or json: a v1 List of the objects"
    )
    parser.set_defaults(func=_cmd_render)
