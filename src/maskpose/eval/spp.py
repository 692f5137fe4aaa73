"""Supervised post-processing (SPP) of Mask-as-Supervision (docs/design.md §1.2).

An unsupervised model predicts ``L`` landmarks (the paper uses ``L >= 2J``) that sit near, but not
on, the annotated joints. SPP learns a small mapping ``R^{L×3} -> R^{J×3}`` from ``k`` labelled
samples (e.g. 1 % of the training set):

* :class:`LinearSPP` (:func:`fit_linear_spp`) — each joint is a linear combination of the
  landmarks, the same weights for x, y and z, ridge-regularised, in closed form. Each sample is
  centred on its landmark mean first, so the map is exactly translation-equivariant and needs no
  bias (J·L parameters, well determined by a few dozen samples).
* :class:`MLPSPP` (:func:`fit_mlp_spp`) — the linear map plus a small residual MLP on the centred,
  flattened landmarks; the MLP's last layer starts at zero, so training starts from the ridge
  solution and can only learn a correction.

:func:`fit_spp` draws the ``k`` labelled samples with a seed and fits either kind.
"""

from __future__ import annotations

import torch
from torch import nn

from maskpose.errors import ConfigError, check_shape, check_tensor


def _check_landmarks(landmarks: torch.Tensor, joints: torch.Tensor | None = None) -> None:
    check_tensor("landmarks", landmarks, (None, None, 3), finite="coordinates")
    if joints is not None:
        check_tensor("joints", joints, (landmarks.shape[0], None, 3), finite="coordinates")


class LinearSPP(nn.Module):
    """``joints = W (landmarks − c) + c`` with ``c`` the landmark mean of each sample.

    Shape: ``(N, L, 3)`` -> ``(N, J, 3)``; ``weight`` is ``(J, L)``.
    """

    def __init__(self, num_landmarks: int, num_joints: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(num_joints, num_landmarks))

    def forward(self, landmarks: torch.Tensor) -> torch.Tensor:
        check_shape("landmarks", landmarks, (None, self.weight.shape[1], 3))
        centre = landmarks.mean(1, keepdim=True)
        return torch.einsum("jl,nlc->njc", self.weight, landmarks - centre) + centre


def fit_linear_spp(landmarks: torch.Tensor, joints: torch.Tensor, ridge: float = 1e-3) -> LinearSPP:
    """Closed-form ridge fit of :class:`LinearSPP` on labelled pairs.

    Args:
        landmarks: ``(k, L, 3)``; joints: ``(k, J, 3)``.
        ridge: Tikhonov weight, relative to the mean squared landmark norm (scale-free).
    """
    _check_landmarks(landmarks, joints)
    if ridge < 0:
        raise ConfigError(f"ridge must be >= 0, got {ridge}")
    x = landmarks.double() - landmarks.double().mean(1, keepdim=True)
    y = joints.double() - landmarks.double().mean(1, keepdim=True)
    # Rows are (sample, axis) pairs: the weights are shared by x, y and z.
    xr = x.permute(0, 2, 1).reshape(-1, x.shape[1])  # (3k, L)
    yr = y.permute(0, 2, 1).reshape(-1, y.shape[1])  # (3k, J)
    gram = xr.T @ xr
    lam = ridge * gram.diagonal().mean().clamp_min(1e-12)
    w = torch.linalg.solve(gram + lam * torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device),
                           xr.T @ yr)  # (L, J)
    spp = LinearSPP(landmarks.shape[1], joints.shape[1]).to(landmarks.device, landmarks.dtype)
    with torch.no_grad():
        spp.weight.copy_(w.T.to(spp.weight.dtype))
    return spp


class MLPSPP(nn.Module):
    """:class:`LinearSPP` plus a residual MLP on the centred landmarks. ``(N, L, 3)`` -> ``(N, J, 3)``."""

    def __init__(self, num_landmarks: int, num_joints: int, hidden: int = 256) -> None:
        super().__init__()
        self.linear = LinearSPP(num_landmarks, num_joints)
        self.mlp = nn.Sequential(
            nn.Linear(num_landmarks * 3, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, num_joints * 3),
        )
        nn.init.zeros_(self.mlp[-1].weight)  # start exactly at the linear map
        nn.init.zeros_(self.mlp[-1].bias)
        self.scale = nn.Parameter(torch.ones(()), requires_grad=False)  # landmark spread, set at fit

    def forward(self, landmarks: torch.Tensor) -> torch.Tensor:
        base = self.linear(landmarks)
        centred = (landmarks - landmarks.mean(1, keepdim=True)) / self.scale
        residual = self.mlp(centred.flatten(1)).view(base.shape) * self.scale
        return base + residual


def fit_mlp_spp(
    landmarks: torch.Tensor, joints: torch.Tensor, hidden: int = 256, steps: int = 300, lr: float = 1e-3,
    weight_decay: float = 1e-3, ridge: float = 1e-3, seed: int = 0,
) -> MLPSPP:
    """Fit :class:`MLPSPP`: ridge for the linear part, then Adam (full batch) on the residual MLP."""
    _check_landmarks(landmarks, joints)
    if steps < 0 or hidden < 1:
        raise ConfigError(f"need steps >= 0 and hidden >= 1, got {steps}, {hidden}")
    torch.manual_seed(seed)
    spp = MLPSPP(landmarks.shape[1], joints.shape[1], hidden).to(landmarks.device, landmarks.dtype)
    spp.linear.load_state_dict(fit_linear_spp(landmarks, joints, ridge).state_dict())
    spp.linear.requires_grad_(False)
    with torch.no_grad():
        centred = landmarks - landmarks.mean(1, keepdim=True)
        spp.scale.fill_(float(centred.norm(dim=-1).mean().clamp_min(1e-6)))
    opt = torch.optim.Adam(spp.mlp.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(steps):
        loss = (spp(landmarks) - joints).norm(dim=-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return spp.eval()


def labelled_subset(n: int, k: int | None = None, fraction: float | None = None, seed: int = 0) -> torch.Tensor:
    """``k`` (or ``round(fraction·n)``, at least 1) distinct indices out of ``n``, drawn with ``seed``."""
    if (k is None) == (fraction is None):
        raise ConfigError("give exactly one of k and fraction")
    if k is None:
        if not 0 < fraction <= 1:
            raise ConfigError(f"fraction must be in (0, 1], got {fraction}")
        k = max(1, round(fraction * n))
    if not 1 <= k <= n:
        raise ConfigError(f"k must be in 1..{n}, got {k}")
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:k]


def fit_spp(
    landmarks: torch.Tensor, joints: torch.Tensor, k: int | None = None, fraction: float | None = None,
    kind: str = "linear", seed: int = 0, **kwargs,
) -> nn.Module:
    """Fit an SPP map on ``k`` seeded labelled samples out of ``(N, L, 3)`` / ``(N, J, 3)``.

    ``kind`` is ``"linear"`` (:func:`fit_linear_spp`) or ``"mlp"`` (:func:`fit_mlp_spp`); extra
    keyword arguments go to the fitting function.
    """
    _check_landmarks(landmarks, joints)
    idx = labelled_subset(landmarks.shape[0], k, fraction, seed).to(landmarks.device)
    if kind == "linear":
        return fit_linear_spp(landmarks[idx], joints[idx], **kwargs)
    if kind == "mlp":
        return fit_mlp_spp(landmarks[idx], joints[idx], seed=seed, **kwargs)
    raise ConfigError(f"kind must be 'linear' or 'mlp', got {kind!r}")
