"""The demo job's training script: adds ~1.0 to the NumPy weights each round and reports a metric.

Shipped into the job's ``custom/`` folder by :mod:`kubectl_launcher_demo.job`; it runs inside the
client job process (NVFlare's Client API, in-process mode), so it must only need NumPy and NVFlare.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import nvflare.client as flare


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sleep", type=float, default=0.2, help="seconds of pretend training per round")
    parser.add_argument("--fail", action="store_true", help="raise in the first round (--break client-error)")
    args = parser.parse_args()

    flare.init()
    site = flare.get_site_name()
    while flare.is_running():
        model = flare.receive()
        if model is None:
            break
        if args.fail:
            raise RuntimeError(f"{site}: training failed on purpose (--break client-error)")
        weights = {name: np.asarray(value, dtype=np.float64) for name, value in (model.params or {}).items()}
        # A deterministic +1.0 per round keeps the final model predictable: initial + rounds.
        updated = {name: value + 1.0 for name, value in weights.items()}
        time.sleep(args.sleep)
        accuracy = float(np.mean([v.mean() for v in updated.values()])) if updated else 0.0
        flare.send(flare.FLModel(params=updated, metrics={"accuracy": accuracy}, meta={"NUM_STEPS_CURRENT_ROUND": 1}))
        print(f"{site}: round {model.current_round} done, accuracy={accuracy:.3f}", flush=True)


if __name__ == "__main__":
    main()
