"""SHA-256 of the weights and of the stored fits after a short adapt run with fitting in the loop,
to compare two versions of the code bit for bit (docs/performance.md sections 5 and 8).

    OMP_NUM_THREADS=1 python docs/scripts/adapt_fingerprint.py
    OMP_NUM_THREADS=1 PYTHONPATH=OLD_CHECKOUT/src python docs/scripts/adapt_fingerprint.py

Three runs of 6 ``Trainer.train_step`` calls (adapt recipe, fitting every 2nd step, batch 16, one
thread) on a 32-sample studio dataset (seed 3): at 64 px from the shipped studio model, and at 64
and 128 px from the seeded random model. Prints per run the first 16 hex digits of each SHA-256
and the six losses; equal lines mean identical training.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import torch

from maskpose.bench.step import make_trainer, synthetic_dataset

SHIPPED = Path(__file__).resolve().parents[2] / "src" / "maskpose" / "assets" / "source_studio_64.pt"


def main() -> None:
    torch.set_num_threads(1)
    for res, init in ((64, str(SHIPPED)), (64, ""), (128, "")):
        root = Path(tempfile.mkdtemp(prefix="maskpose-fingerprint-"))
        data = synthetic_dataset(root / "data", 32, res, 3)
        changes = {"init_checkpoint": init} if init else {}
        trainer = make_trainer("adapt", data, root / "run", res, 16, "cpu", 0, fit_every=2, **changes)
        losses = [trainer.train_step()["loss"] for _ in range(6)]
        weights = hashlib.sha256()
        for _, value in sorted(trainer.model.state_dict().items()):
            weights.update(value.detach().cpu().numpy().tobytes())
        fits = hashlib.sha256(b"".join(value.numpy().tobytes() for index in sorted(trainer.fits)
                                       for _, value in sorted(trainer.fits[index].items())))
        print(f"{res} px from {'the shipped model' if init else 'the random model'}: weights "
              f"{weights.hexdigest()[:16]}, fits {fits.hexdigest()[:16]}, losses {losses}")


if __name__ == "__main__":
    main()
