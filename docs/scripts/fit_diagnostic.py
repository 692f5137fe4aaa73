"""Per-sample fitting with one mask loss, no network update (docs/benchmark.md, "Binarisation").

From the shipped source model's predictions on a labelled target test split, refine each sample's
body parameters (pose, phenotypes, camera) for ITERATIONS Adam steps on the mask losses alone (as
fitting in the loop does) and print the loss, silhouette IoU and PA-MPJPE before and after. Labels
only score the result.

    python docs/scripts/fit_diagnostic.py DATASET LOSSES [ITERATIONS] [LR] [BINARIZATION] [TEMPERATURE]
    python docs/scripts/fit_diagnostic.py runs/bench/data/scene/test ls+lt 30 0.02 soft 0.1
"""
import sys

import torch

from maskpose.apps.demo import SMALL_SOURCE, shipped_checkpoint
from maskpose.data.batching import load_batch
from maskpose.data.dataset import MaskposeDataset
from maskpose.eval.metrics import pa_mpjpe, silhouette_iou
from maskpose.train.checkpoint import load_model
from maskpose.train.config import TrainConfig
from maskpose.train.loop import Trainer
from maskpose.train.pipeline import batch_intrinsics, mesh_prediction

torch.set_num_threads(1)
data, names = sys.argv[1], sys.argv[2]
iterations = int(sys.argv[3]) if len(sys.argv) > 3 else 30
lr = float(sys.argv[4]) if len(sys.argv) > 4 else 0.02
binarization = sys.argv[5] if len(sys.argv) > 5 else "soft"
temperature = float(sys.argv[6]) if len(sys.argv) > 6 else 0.1
source = str(shipped_checkpoint(SMALL_SOURCE))
model, _ = load_model(source)
losses = {name: 1.0 for name in names.split("+")} | {"prior": 0.1}
config = TrainConfig(mode="adapt", data=data, out="/tmp/maskpose_fit_diagnostic", init_checkpoint=source,
                     losses=losses, model=model.config, fit_lr=lr, fit_iterations=iterations,
                     topology_binarization=binarization, topology_temperature=temperature)
trainer = Trainer(config, progress=False)  # only its body, renderer, objective and fitting are used
batch = load_batch(MaskposeDataset(data), torch.arange(64), trainer.res, "cpu")
K = batch_intrinsics(batch, trainer.res, config.focal_px, "cpu")


@torch.no_grad()
def score(params) -> dict:
    pred = mesh_prediction(params, trainer.body, K, trainer.res, trainer.renderer)
    loss, _ = trainer.objective(pred, batch)
    return {"loss": round(float(loss), 4), "iou": round(100 * float(silhouette_iou(pred.silhouette, batch["mask"])), 1),
            "pa_mpjpe": round(float(pa_mpjpe(pred.joints3d, batch["joints3d"])), 1)}


with torch.no_grad():
    start = trainer.model(batch["image"]).mesh
print(names, binarization, temperature, "before", score(start))
print(names, binarization, temperature, "after ", score(trainer.fit_parameters(batch, start)))
