"""Every adaptation loss on the demo's thermal target, from the shipped source model (docs/benchmark.md)."""
import json
import shutil
import sys

import torch

from maskpose.apps.demo import SMALL_SOURCE, DemoConfig, shipped_checkpoint
from maskpose.train.config import TrainConfig
from maskpose.train.evaluate import evaluate_checkpoint
from maskpose.train.loop import train

torch.set_num_threads(1)
demo = DemoConfig()
src = shipped_checkpoint(SMALL_SOURCE)
root = "demo_output/data/thermal"  # the folder `make demo` writes
variants = {
    "l2": ({"l2": 1.0, "prior": 0.1}, 0), "bce": ({"bce": 1.0, "prior": 0.1}, 0),
    "ls": ({"ls": 1.0, "prior": 0.1}, 0), "ls_lt": ({"ls": 1.0, "lt": 1.0, "prior": 0.1}, 0),
    "ls_lt_fit": ({"ls": 1.0, "lt": 1.0, "prior": 0.1}, 4), "l2_fit": ({"l2": 1.0, "prior": 0.1}, 4),
    "mas": ({"mas": 1.0, "prior": 0.1}, 0),
}
results = {"source": evaluate_checkpoint(src, f"{root}/test")}
print("source", round(results["source"]["pa_mpjpe"], 1), flush=True)
for name in sys.argv[1:]:
    losses, fit = variants[name]
    out = f"runs/thermal_{name}"
    shutil.rmtree(out, ignore_errors=True)
    r = train(TrainConfig(mode="adapt", data=f"{root}/train", out=out, init_checkpoint=str(src), steps=demo.adapt.steps,
                          batch_size=demo.adapt.batch_size, lr=demo.adapt.lr, losses=losses, fit_every=fit,
                          fit_iterations=demo.adapt.fit_iterations, model=demo.model()), progress=False)
    m = evaluate_checkpoint(r.checkpoint, f"{root}/test")
    results[name] = m
    print(name, {k: round(m[k], 1) for k in ("mpjpe", "pa_mpjpe", "silhouette_iou")}, flush=True)
json.dump(results, open("runs/thermal_variants.json", "w"), indent=1)
