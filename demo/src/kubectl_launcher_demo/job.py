"""Builds the demo's federated job folder: NVFlare's NumPy FedAvg recipe around fedavg_client.py.

Run as ``python -m kubectl_launcher_demo.job OUT_DIR ...`` (the flow does so in a child process, so the
recipe's imports and any files NVFlare writes stay out of the caller and inside the deployment's HOME).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

#: The initial global model; after N rounds of +1.0 the final model is this plus N everywhere.
SCRIPT = "fedavg_client.py"
INITIAL_MODEL = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]


@dataclass(frozen=True)
class JobSpec:
    """What to build: the knobs the demo and the e2e test turn."""

    name: str = "hello-numpy-k8s"
    rounds: int = 3
    sleep: float = 0.3
    fail: bool = False
    min_clients: int = 2
    #: launcher_spec image for every site (what a Kubernetes launcher runs the job in); None: no launcher_spec.
    image: str | None = None

    def cli_args(self) -> list[str]:
        args = ["--name", self.name, "--rounds", str(self.rounds), "--sleep", str(self.sleep)]
        args += ["--min-clients", str(self.min_clients)]
        if self.image:
            args += ["--image", self.image]
        return [*args, "--fail"] if self.fail else args

    def expected_final_model(self) -> list[list[float]]:
        return [[value + self.rounds for value in row] for row in INITIAL_MODEL]


def build(spec: JobSpec, out_dir: Path) -> Path:
    """Export the job under ``out_dir`` and return the job folder (the one to submit)."""
    # Imported here: the recipe pulls in most of NVFlare, which callers of JobSpec do not need.
    from nvflare.app_common.np.recipes.fedavg import NumpyFedAvgRecipe

    # The recipe records train_script as given; a bare file name keeps the job free of this
    # machine's paths (custom/fedavg_client.py is found relative to the job's run directory).
    out_dir = out_dir.resolve()
    staging = out_dir.parent / f".{out_dir.name}-src"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copy(Path(__file__).with_name(SCRIPT), staging / SCRIPT)
    train_args = f"--sleep {spec.sleep}" + (" --fail" if spec.fail else "")
    recipe = NumpyFedAvgRecipe(
        name=spec.name,
        model=INITIAL_MODEL,
        min_clients=spec.min_clients,
        num_rounds=spec.rounds,
        train_script=SCRIPT,
        train_args=train_args,
    )
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    cwd = os.getcwd()
    try:
        os.chdir(staging)
        recipe.export(str(out_dir.resolve()))
    finally:
        os.chdir(cwd)
        shutil.rmtree(staging, ignore_errors=True)
    job_dir = out_dir / spec.name
    meta_path = job_dir / "meta.json"
    if not meta_path.is_file():
        raise RuntimeError(f"the recipe did not export a job into {job_dir}")
    if spec.image:
        meta = json.loads(meta_path.read_text())
        meta["launcher_spec"] = {"default": {"k8s": {"image": spec.image}}}
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return job_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubectl_launcher_demo.job", description=__doc__)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--name", default=JobSpec.name)
    parser.add_argument("--rounds", type=int, default=JobSpec.rounds)
    parser.add_argument("--sleep", type=float, default=JobSpec.sleep)
    parser.add_argument("--min-clients", type=int, default=JobSpec.min_clients)
    parser.add_argument("--image")
    parser.add_argument("--fail", action="store_true")
    ns = parser.parse_args(argv)
    spec = JobSpec(
        name=ns.name, rounds=ns.rounds, sleep=ns.sleep, fail=ns.fail, min_clients=ns.min_clients, image=ns.image
    )
    job_dir = build(spec, ns.out_dir)
    print(json.dumps({"job_dir": str(job_dir)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
