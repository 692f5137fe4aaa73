"""Supervised post-processing (SPP) of Mask-as-Supervision (docs/design.md §1.2).

An unsupervised model predicts ``L`` landmarks (the paper uses ``L >= 2J``) that sit near, but not
on, the annotated joints. SPP learns a small mapping ``R^{L×3} -> R^{J×3}`` from ``k`` labelled
samples (e.g. 1 % of the training set):

* :class:`LinearSPP` (:func:`fit_linear_spp`) — each joint is a linear combination of the
  landmarks, the same weights for x, y and z, ridge-regularised towards the identity map (landmark
  ``j`` to joint ``j``) with the weight chosen by cross-validation on the labelled samples, in
  closed form. Each sample is centred on its landmark mean first, so the map is exactly
  translation-equivariant and needs no bias (J·L parameters).
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
        self.ridge: float | None = None  # the fit's ridge weight (fit_linear_spp)

    def forward(self, landmarks: torch.Tensor) -> torch.Tensor:
        check_shape("landmarks", landmarks, (None, self.weight.shape[1], 3))
        centre = landmarks.mean(1, keepdim=True)
        return torch.einsum("jl,nlc->njc", self.weight, landmarks - centre) + centre


#: The ridge weights :func:`fit_linear_spp` chooses among by cross-validation (``ridge="cv"``),
#: relative to the mean squared landmark norm: from almost free weights to almost the prior.
RIDGE_GRID: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)
#: Folds of that cross-validation (fewer when there are fewer labelled samples).
RIDGE_FOLDS = 5


def _ridge_solve(x: torch.Tensor, y: torch.Tensor, ridge: float, prior: str) -> torch.Tensor:
    """``(L, J)`` weights minimising ``‖X W − Y‖² + λ ‖W − W₀‖²`` over centred ``(k, L, 3)`` /
    ``(k, J, 3)`` pairs, ``λ = ridge × mean(diag XᵀX)``; ``W₀`` is 0 or, for ``prior="identity"``,
    1 from landmark ``j`` to joint ``j`` (the first ``J`` landmarks are the joints)."""
    xr = x.permute(0, 2, 1).reshape(-1, x.shape[1])  # (3k, L): rows are (sample, axis) pairs,
    yr = y.permute(0, 2, 1).reshape(-1, y.shape[1])  # so the weights are shared by x, y and z
    gram = xr.T @ xr
    lam = ridge * gram.diagonal().mean().clamp_min(1e-12)
    rhs = xr.T @ yr
    if prior == "identity":
        n = min(x.shape[1], y.shape[1])
        rhs[:n, :n] += lam * torch.eye(n, dtype=rhs.dtype, device=rhs.device)
    return torch.linalg.solve(gram + lam * torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device), rhs)


def _cv_ridge(x: torch.Tensor, y: torch.Tensor, prior: str) -> float:
    """The ridge weight of :data:`RIDGE_GRID` that cross-validation on the labelled samples picks,
    by the one-standard-error rule: the largest weight (the one closest to the prior) whose mean
    held-out joint error is within one standard error of the least. Folds: ``min(RIDGE_FOLDS, k)``,
    sample ``i`` in fold ``i mod folds``. With fewer than 2 samples, the largest weight. (A few
    dozen samples make the plain minimum noisy, and its pick overfits them.)"""
    k = x.shape[0]
    if k < 2:
        return RIDGE_GRID[-1]
    folds = min(RIDGE_FOLDS, k)
    fold_of = torch.arange(k, device=x.device) % folds
    errors = []  # per grid value: the held-out mean joint error of every sample
    for ridge in RIDGE_GRID:
        per_sample = torch.empty(k, dtype=x.dtype, device=x.device)
        for f in range(folds):
            train, held = fold_of != f, fold_of == f
            w = _ridge_solve(x[train], y[train], ridge, prior)
            per_sample[held] = (torch.einsum("lj,nlc->njc", w, x[held]) - y[held]).norm(dim=-1).mean(1)
        errors.append(per_sample)
    means = torch.stack([e.mean() for e in errors])
    best = int(means.argmin())
    bound = float(means[best] + errors[best].std() / k**0.5)
    return max(r for r, m in zip(RIDGE_GRID, means.tolist()) if m <= bound)


def fit_linear_spp(landmarks: torch.Tensor, joints: torch.Tensor, ridge: float | str = "cv",
                   prior: str = "identity") -> LinearSPP:
    r"""Closed-form ridge fit of :class:`LinearSPP` on labelled pairs.

    .. math::

        W = \arg\min_W \lVert X W - Y \rVert^2 + \lambda \lVert W - W_0 \rVert^2

    over the centred landmarks ``X`` and joints ``Y`` of every sample and axis. With ``prior =
    "identity"`` (the default), ``W₀`` maps landmark ``j`` to joint ``j``: the landmarks are already
    estimates of the joints, and with a few dozen labelled samples a map shrunk towards zero
    weights pulls every joint towards the landmark mean. ``prior = "zero"`` is plain ridge.

    Args:
        landmarks: ``(k, L, 3)``; joints: ``(k, J, 3)``.
        ridge: Tikhonov weight ``λ``, relative to the mean squared landmark norm (scale-free), or
            ``"cv"``: chosen among :data:`RIDGE_GRID` by cross-validation on the ``k`` samples
            themselves (``LinearSPP.ridge`` records the choice).
        prior: ``"identity"`` or ``"zero"``.
    """
    _check_landmarks(landmarks, joints)
    if prior not in ("identity", "zero"):
        raise ConfigError(f"prior must be 'identity' or 'zero', got {prior!r}")
    if ridge != "cv" and (isinstance(ridge, (str, bool)) or not ridge >= 0):
        raise ConfigError(f"ridge must be a number >= 0 or 'cv', got {ridge!r}")
    centre = landmarks.double().mean(1, keepdim=True)
    x, y = landmarks.double() - centre, joints.double() - centre
    chosen = _cv_ridge(x, y, prior) if ridge == "cv" else float(ridge)
    w = _ridge_solve(x, y, chosen, prior)  # (L, J)
    spp = LinearSPP(landmarks.shape[1], joints.shape[1]).to(landmarks.device, landmarks.dtype)
    with torch.no_grad():
        spp.weight.copy_(w.T.to(spp.weight.dtype))
    spp.ridge = chosen
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
    weight_decay: float = 1e-3, ridge: float | str = "cv", seed: int = 0, prior: str = "identity",
) -> MLPSPP:
    """Fit :class:`MLPSPP`: the linear part as :func:`fit_linear_spp` fits it (``ridge``, ``prior``;
    ``spp.linear.ridge`` records the weight), then Adam (full batch) on the residual MLP."""
    _check_landmarks(landmarks, joints)
    if steps < 0 or hidden < 1:
        raise ConfigError(f"need steps >= 0 and hidden >= 1, got {steps}, {hidden}")
    torch.manual_seed(seed)
    spp = MLPSPP(landmarks.shape[1], joints.shape[1], hidden).to(landmarks.device, landmarks.dtype)
    linear = fit_linear_spp(landmarks, joints, ridge, prior)
    spp.linear.load_state_dict(linear.state_dict())
    spp.linear.ridge = linear.ridge  # not a tensor: not in the state dict
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
