"""The loss terms a config can name (``TrainConfig.losses``), each ``(prediction, batch) -> scalar``.

Supervised terms need labels (source data, or the oracle); mask terms need only the target mask;
regularisers need neither. The topology losses (method 1) and Mask-as-Supervision (method 2) come
from ``maskpose.topology`` and ``maskpose.masks``; this module only wires them to predictions.

Real photographs add two things to the silhouette losses (``ls``, ``lt``, ``l1``, ``l2``, ``bce``,
``soft_iou``, ``chamfer_points``, and so ``silhouette_sup`` and fitting in the loop, which use the
same terms):

* **The crop's padding never counts.** When the batch has ``valid`` (``(B, 1, H, W)``, 1 where the
  crop lies inside the photo: the real-data adapters write it), the loss compares the rendered
  silhouette *times* ``valid`` with the mask: the camera saw only the photo, and so did the mask.
  Silhouette pixels on the padding get no gradient at all. A batch without ``valid`` (synthetic
  data) is scored exactly as before, bit for bit.
* **Occlusion-aware weighting** (``TrainConfig.false_positive_weight`` ``w``, default 1: the plain
  losses). A real mask covers the visible body only, so predicted pixels outside it (false
  positives) may be a body hidden by an occluder. With ``w != 1`` they weigh ``w``: per pixel in
  ``l1``/``l2``/``bce`` (weight ``w + (1 - w) * mask``) and in the union of ``soft_iou``
  (``sum(m + w p (1 - m))``); in ``ls`` and ``lt`` the silhouette-to-mask term of
  :func:`~maskpose.topology.chamfer_map_loss`, ``||S2D(1 - B) ⊙ A||_1 / |A|`` (zero unless ``A``
  is outside ``B``), is multiplied by ``w`` and the mask-to-silhouette term is kept; in
  ``chamfer_points`` the predicted-to-target term likewise. The weighting lives in the loss
  functions themselves (their ``false_positive_weight`` argument).

The ``anchor`` regulariser keeps the adapted model near the *source* model where masks say little:
body shape (phenotypes, or SMPL betas) and camera distance (the log of the weak-perspective scale).
It reads the source model's prediction on the same images from the batch (:data:`ANCHOR_KEYS`,
added by :class:`~maskpose.train.loop.Trainer` from a frozen copy of the init checkpoint's model).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from maskpose.body.sampler import pose_prior_loss
from maskpose.body.smpl_body import smpl_pose_from_axis_angle
from maskpose.conventions import H36M_BONES
from maskpose.errors import ConfigError
from maskpose.masks.geodesic import geodesic_weights_torch
from maskpose.masks.loss import JointMaskSupervision
from maskpose.masks.physique import PhysiqueNet
from maskpose.masks.symmetry import bone_symmetry_loss, centre_symmetry_loss
from maskpose.models.integral import hypothesis_cross_entropy, winner_takes_all_l1
from maskpose.models.regressor import JointHeadOutput, MeshHeadOutput
from maskpose.topology import (
    outward_distance_map,
    silhouette_alignment_loss,
    topological_skeleton,
    topology_alignment_loss,
)
from maskpose.topology.baselines import (
    bce_loss,
    pixel_l1_loss,
    pixel_l2_loss,
    point_chamfer_loss,
    soft_iou_loss,
)
from maskpose.train.config import MASK_LOSSES, SUPERVISED_LOSSES, TrainConfig
from maskpose.train.pipeline import Prediction

#: Batch keys of the source model's prediction on the batch's images that the ``anchor`` loss
#: reads: phenotypes ``(B, P)`` and weak-perspective scale ``(B,)``.
ANCHOR_KEYS = ("anchor_phenotypes", "anchor_scale")
#: Weight of the hypothesis choice (cross-entropy toward the winner) within the joints3d loss of a
#: head with depth hypotheses: small beside the metric L1, so choosing never outweighs fitting.
HYPOTHESIS_CHOICE_WEIGHT = 0.01
#: Batch key of the masks' D2T skeleton, when a caller computed it once for many calls
#: (:meth:`Objective.with_mask_targets`); the ``lt`` term computes it itself otherwise.
MASK_SKELETON_KEY = "mask_skeleton"
#: Batch keys of the whole outward distance maps of the masks and of their skeleton, likewise
#: computed once for many calls: the ``ls`` and ``lt`` terms otherwise erode them anew, up to the
#: predicted pixels, in each call.
MASK_DISTANCE_KEY = "mask_outward_distance"
MASK_SKELETON_DISTANCE_KEY = "mask_skeleton_outward_distance"
#: The terms that read the predicted joints (the others read the silhouette or the parameters).
JOINT_TERMS = ("joints3d", "joints2d", "mas", "symmetry")

def param_fields(body: str) -> tuple[str, ...]:
    """The dataset fields that hold a body model's parameters (what the ``params`` loss compares
    with): Anny ``pose``, ``phenotypes``; SMPL ``smpl_pose``, ``smpl_betas``."""
    return ("smpl_pose", "smpl_betas") if body == "smpl" else ("pose", "phenotypes")


def landmark_bones(num_landmarks: int, num_joints: int = 17) -> tuple[tuple[int, int], ...]:
    """Skeleton over ``L`` landmarks: H36M bones on the first 17, and each further landmark
    ``17 + k`` joined to joint ``k`` (so every landmark is drawn into the skeleton mask)."""
    extra = tuple((k % num_joints, num_joints + k) for k in range(num_landmarks - num_joints))
    return tuple(H36M_BONES) + extra


def _masked_l1(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the joints whose label is known: real-data adapters store a
    missing joint as NaN (never 0), and such joints must neither count nor poison the loss."""
    known = torch.isfinite(gt).all(-1, keepdim=True)
    diff = torch.where(known, pred - torch.nan_to_num(gt), torch.zeros_like(pred))
    return diff.abs().sum() / (known.sum() * pred.shape[-1]).clamp_min(1)


def _smpl_params_loss(params: MeshHeadOutput, batch: dict) -> torch.Tensor:
    """Mean squared error of the predicted SMPL pose (6D, against
    :func:`~maskpose.body.smpl_body.smpl_pose_from_axis_angle` of ``smpl_pose``) and betas (against
    ``smpl_betas``), each over the samples where they are known: ``has_smpl`` (when the batch has
    it) and finite. No known sample: 0 (with a gradient path)."""
    axis_angle, betas = batch["smpl_pose"], batch["smpl_betas"]
    known = torch.isfinite(axis_angle).all(-1) & torch.isfinite(betas).all(-1)
    if "has_smpl" in batch:
        known = known & (batch["has_smpl"].reshape(-1) > 0.5)
    target = smpl_pose_from_axis_angle(torch.where(known[:, None], axis_angle, torch.zeros_like(axis_angle)))
    betas = torch.where(known[:, None], betas, torch.zeros_like(betas))
    weight = known.to(params.pose.dtype)
    count = weight.sum().clamp_min(1)
    pose_error = (params.pose - target).square().flatten(1).mean(1)
    shape_error = (params.phenotypes - betas).square().mean(1)
    return ((pose_error + shape_error) * weight).sum() / count


class Objective(nn.Module):
    """Weighted sum of the configured loss terms. Holds the trainable physique net of method 2."""

    def __init__(self, config: TrainConfig):
        super().__init__()
        self.weights = dict(config.losses)
        self.res = config.model.resolution
        self.body = config.body
        if self.body == "smpl" and self.weights.get("prior", 0) > 0:
            raise ConfigError("the prior loss holds Anny's joint limits; body 'smpl' has no such table: drop prior")
        self.terms: dict[str, Callable] = {name: getattr(self, f"_{name}") for name in self.weights}
        if "mas" in self.weights:
            joint_head = "joints" in config.model.heads
            bones = landmark_bones(config.model.num_landmarks) if joint_head else H36M_BONES
            self.mas = JointMaskSupervision(
                size=(self.res, self.res), sigma=config.mas_sigma, bones=bones,
                style=config.mas_style, physique=self._physique(config), skeleton_term=config.mas_skeleton_term,
            )
        self.mas_geodesic = config.mas_geodesic
        self.mas_geodesic_form = config.mas_geodesic_form
        self.topology_options = dict(binarization=config.topology_binarization,
                                     temperature=config.topology_temperature)
        #: weight of predicted silhouette pixels outside the mask (1: the plain losses; module docstring)
        self.false_positive_weight = float(config.false_positive_weight)

    @staticmethod
    def _physique(config: TrainConfig) -> PhysiqueNet | None:
        """ψ of the mas loss: none without ``mas_physique``; the pretrained net of
        ``mas_physique_checkpoint`` (``maskpose masks train-physique``), trained on jointly; else a
        fresh one."""
        if not config.mas_physique:
            return None
        if config.mas_physique_checkpoint:
            return PhysiqueNet.load(config.mas_physique_checkpoint)
        return PhysiqueNet()

    @property
    def needs_silhouette(self) -> bool:
        return any(name in self.weights for name in MASK_LOSSES if name != "mas") or "silhouette_sup" in self.weights

    @property
    def param_fields(self) -> tuple[str, ...]:
        """The dataset fields the ``params`` loss compares with (the body model's parameters):
        Anny ``pose``, ``phenotypes``; SMPL ``smpl_pose``, ``smpl_betas`` (``has_smpl``, when the
        dataset has it, marks the samples where they are known)."""
        return param_fields(self.body)

    @property
    def needs_labels(self) -> bool:
        return any(name in SUPERVISED_LOSSES for name in self.weights)

    @property
    def reads_joints(self) -> bool:
        """Whether a term reads the predicted joints (:data:`JOINT_TERMS`); without, a mesh
        prediction can skip them (``mesh_prediction(..., joints=False)``, as fitting does)."""
        return any(self.weights.get(name) for name in JOINT_TERMS)

    def with_mask_targets(self, batch: dict) -> dict:
        """``batch`` plus what the mask terms compute from the masks alone, for a caller that scores
        the same batch many times (fitting in the loop, per-image refinement): when ``ls`` is on,
        the masks' whole outward distance map (:data:`MASK_DISTANCE_KEY`); when ``lt`` is on, the
        masks' D2T skeleton (:data:`MASK_SKELETON_KEY`) and its outward distance map
        (:data:`MASK_SKELETON_DISTANCE_KEY`). The values of every term are unchanged, and so are
        the gradients that reach the body (``chamfer_map_loss``'s ``target_distance``; checked bit
        for bit on training runs with fitting); only the repeated work is saved."""
        targets = {}
        mask = batch["mask"]
        fixed = not mask.requires_grad  # the outward maps stand in only for a target without gradient
        if self.weights.get("ls") and fixed:
            targets[MASK_DISTANCE_KEY] = outward_distance_map(mask, **self.topology_options)
        if self.weights.get("lt"):
            skeleton = topological_skeleton(mask, **self.topology_options)
            targets[MASK_SKELETON_KEY] = skeleton
            if fixed:
                targets[MASK_SKELETON_DISTANCE_KEY] = outward_distance_map(skeleton, **self.topology_options)
        return dict(batch, **targets) if targets else batch

    def forward(self, pred: Prediction, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        total = torch.zeros((), device=(pred.joints3d if pred.joints3d is not None else pred.vertices).device)
        parts = {}
        for name, weight in self.weights.items():
            if weight == 0:
                continue
            value = self.terms[name](pred, batch)
            parts[name] = float(value.detach())
            total = total + weight * value
        return total, parts

    # ------------------------------------------------------------------ supervised
    def _joints3d(self, pred: Prediction, batch: dict) -> torch.Tensor:
        gt = batch["joints3d"]
        params = pred.params
        if isinstance(params, JointHeadOutput) and params.hypotheses is not None:
            # Depth hypotheses (the integral head): winner-takes-all on the best one, and the
            # hypothesis logits learn to pick it (a test-time choice without ground truth).
            loss, winner = winner_takes_all_l1(params.hypotheses[:, :, :17], gt)
            return loss + HYPOTHESIS_CHOICE_WEIGHT * hypothesis_cross_entropy(params.hypothesis_logits, winner)
        return _masked_l1(pred.joints3d - pred.joints3d[:, :1], gt - gt[:, :1])

    def _joints2d(self, pred: Prediction, batch: dict) -> torch.Tensor:
        return _masked_l1(pred.joints2d[:, :17] / self.res, batch["joints2d"] / self.res)

    def _params(self, pred: Prediction, batch: dict) -> torch.Tensor:
        params = pred.params
        if not isinstance(params, MeshHeadOutput):
            raise ConfigError("the params loss needs the mesh head")
        if self.body == "smpl":
            return _smpl_params_loss(params, batch)
        return F.mse_loss(params.pose, batch["pose"]) + F.mse_loss(params.phenotypes, batch["phenotypes"])

    def _silhouette_sup(self, pred: Prediction, batch: dict) -> torch.Tensor:
        return self._bce(pred, batch)

    # ------------------------------------------------------------------ masks only (method 1 + baselines)
    @staticmethod
    def seen_silhouette(pred: Prediction, batch: dict) -> torch.Tensor:
        """The rendered silhouette as the photo's camera saw it: times ``batch["valid"]`` (0 on a
        real crop's padding) when the batch has it, else the silhouette itself (the same tensor)."""
        valid = batch.get("valid")
        if valid is None:
            return pred.silhouette
        return pred.silhouette * valid.reshape(pred.silhouette.shape)

    def _ls(self, pred: Prediction, batch: dict) -> torch.Tensor:
        return silhouette_alignment_loss(self.seen_silhouette(pred, batch), batch["mask"], **self.topology_options,
                                         false_positive_weight=self.false_positive_weight,
                                         target_distance=batch.get(MASK_DISTANCE_KEY))

    def _lt(self, pred: Prediction, batch: dict) -> torch.Tensor:
        return topology_alignment_loss(self.seen_silhouette(pred, batch), batch["mask"], **self.topology_options,
                                       false_positive_weight=self.false_positive_weight,
                                       target_skeleton=batch.get(MASK_SKELETON_KEY),
                                       target_skeleton_distance=batch.get(MASK_SKELETON_DISTANCE_KEY))

    def _l1(self, pred: Prediction, batch: dict) -> torch.Tensor:
        return pixel_l1_loss(self.seen_silhouette(pred, batch), batch["mask"],
                             false_positive_weight=self.false_positive_weight)

    def _l2(self, pred: Prediction, batch: dict) -> torch.Tensor:
        return pixel_l2_loss(self.seen_silhouette(pred, batch), batch["mask"],
                             false_positive_weight=self.false_positive_weight)

    def _bce(self, pred: Prediction, batch: dict) -> torch.Tensor:
        return bce_loss(self.seen_silhouette(pred, batch), batch["mask"],
                        false_positive_weight=self.false_positive_weight)

    def _soft_iou(self, pred: Prediction, batch: dict) -> torch.Tensor:
        return soft_iou_loss(self.seen_silhouette(pred, batch), batch["mask"],
                             false_positive_weight=self.false_positive_weight)

    def _chamfer_points(self, pred: Prediction, batch: dict) -> torch.Tensor:
        return point_chamfer_loss(self.seen_silhouette(pred, batch), batch["mask"],
                                  false_positive_weight=self.false_positive_weight)

    # ------------------------------------------------------------------ masks only (method 2)
    def _mas(self, pred: Prediction, batch: dict) -> torch.Tensor:
        weights = None
        if self.mas_geodesic:  # the dataset's stored (paper) weights, or the released form of the mask
            # The released code multiplies the squared error by its G; our loss squares G ⊙ (M − M_skel),
            # so its form enters as the square root.
            weights = (geodesic_weights_torch(batch["mask"], mode="released").sqrt()
                       if self.mas_geodesic_form == "released" else batch.get("geodesic"))
        return self.mas(pred.joints2d, batch["mask"], weights)

    def _symmetry(self, pred: Prediction, batch: dict) -> torch.Tensor:
        """Left-right symmetry of the predicted H36M-17 joints (the released recipe's priors): equal
        left and right bone lengths, plus the hip centre on the pelvis and the shoulder centre on the
        thorax (:func:`~maskpose.masks.symmetry.bone_symmetry_loss` +
        :func:`~maskpose.masks.symmetry.centre_symmetry_loss`, both in m²)."""
        joints = pred.joints3d[:, :17]
        return bone_symmetry_loss(joints) + centre_symmetry_loss(joints)

    # ------------------------------------------------------------------ regularisers
    def _prior(self, pred: Prediction, batch: dict) -> torch.Tensor:
        if not isinstance(pred.params, MeshHeadOutput):
            return pred.joints3d.new_zeros(())
        return pose_prior_loss(pred.params.pose)

    def _anchor(self, pred: Prediction, batch: dict) -> torch.Tensor:
        """Shape and camera distance near the source model's prediction on the same images:

        ``mean_{b,k} (phenotypes - phenotypes_src)^2 + mean_b (log scale - log scale_src)^2``

        with ``phenotypes_src``, ``scale_src`` the batch's :data:`ANCHOR_KEYS` (the Trainer's frozen
        copy of the init checkpoint's model, in eval mode, without gradient). 0 while the model
        equals its source. Masks constrain shape and distance poorly on real crops (an occluder or
        a loose garment reads as a larger body, a smaller body nearer the camera fits the same
        outline); this keeps both where the source put them and leaves the pose to the masks."""
        params = pred.params
        if not isinstance(params, MeshHeadOutput):
            raise ConfigError("the anchor loss needs the mesh head")
        if any(key not in batch for key in ANCHOR_KEYS):
            raise ConfigError("the anchor loss needs the source model's prediction on the batch (batch keys "
                              f"{', '.join(ANCHOR_KEYS)}; the Trainer adds them in adapt with an init_checkpoint)")
        shape = (params.phenotypes - batch["anchor_phenotypes"]).square().mean()
        distance = (torch.log(params.scale) - torch.log(batch["anchor_scale"])).square().mean()
        return shape + distance

    def _phenotype_prior(self, pred: Prediction, batch: dict) -> torch.Tensor:
        if not isinstance(pred.params, MeshHeadOutput):
            return pred.joints3d.new_zeros(())
        if self.body == "smpl":  # betas: 0 is SMPL's template
            return pred.params.phenotypes.square().mean()
        return (pred.params.phenotypes - 0.5).square().mean()
