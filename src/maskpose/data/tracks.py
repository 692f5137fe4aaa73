"""Temporal smoothing of per-person predictions along video tracks.

A static-camera video gives each person a track (:mod:`maskpose.data.video`: ``track_id`` and
``frame_index`` per crop); a regressor predicts each crop on its own, so its 3D joints jitter from
frame to frame. The filters here are pure functions of a track's values ``(T, ...)`` (typically
3D joints ``(T, J, 3)`` in metres), filtered along axis 0, with the frame index of each row when
the track has gaps. Three filters, by their lag:

``exponential`` (causal, online)
    ``y_0 = x_0``, ``y_t = y_{t-1} + a_t (x_t - y_{t-1})`` with ``a_t = 1 - (1 - alpha)^{Δ_t}``
    (``Δ_t`` the frame step, 1 without gaps: a gap of ``k`` frames counts as ``k`` steps). Lag on a
    ramp: ``(1 - alpha) / alpha`` frames (after the start-up transient); steady-state variance of
    white noise: ``alpha / (2 - alpha)`` of the input's. :func:`alpha_for_lag` inverts the lag.
``one-euro`` (causal, online; Casiez, Roussel and Vogel, CHI 2012)
    An exponential filter whose cut-off frequency rises with the speed:
    ``f_c = min_cutoff + beta * |dx/dt|`` (Hz; the speed of each joint, the norm over the last axis,
    itself low-passed at ``d_cutoff``), ``alpha = 1 / (1 + fps / (2 π f_c Δ_t))``, so the lag is
    ``fps / (2 π f_c)`` frames: at most ``fps / (2 π min_cutoff)`` (at rest, or ``beta = 0``),
    less when the person moves fast. With ``beta = 0`` it is exactly the exponential filter with
    ``alpha = 1 / (1 + fps / (2 π min_cutoff))``.
``centred`` (offline)
    A Gaussian-weighted mean over frames: ``y_t = Σ_s w_ts x_s / Σ_s w_ts``,
    ``w_ts = exp(-(f_s - f_t)² / (2 sigma²))`` over ``|f_s - f_t| <= 3 sigma`` (``f`` the frame
    indices, so gaps are handled by the weights). No lag: a linear signal is reproduced exactly
    wherever the window is symmetric (everywhere but the first and last ``3 sigma`` frames); the
    variance of white noise drops to ``Σ w² / (Σ w)²`` of the input's (about
    ``1 / (2 sigma √π)`` for ``sigma >= 2``).

:func:`smooth_tracks` applies one of them to every track of a set of predictions
``(N, ...)`` with their ``track_id`` and ``frame_index`` (the crops of a video dataset).
"""

from __future__ import annotations

import math

import numpy as np

from maskpose.errors import ConfigError, MaskposeError

#: The filters :func:`smooth_tracks` knows.
METHODS = ("exponential", "one-euro", "centred")


def _frames(values: np.ndarray, frames) -> np.ndarray:
    if frames is None:
        return np.arange(len(values), dtype=np.float64)
    f = np.asarray(frames, dtype=np.float64)
    if f.shape != (len(values),):
        raise MaskposeError(f"frames must have shape ({len(values)},), got {f.shape}")
    if len(f) > 1 and not (np.diff(f) > 0).all():
        raise MaskposeError("frames must be strictly increasing")
    return f


def _values(values) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim < 1:
        raise MaskposeError(f"values must have a time axis (T, ...), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise MaskposeError("values contain NaN or infinite entries; filter finite predictions only")
    return x


def alpha_for_lag(lag_frames: float) -> float:
    """The exponential filter's ``alpha`` whose ramp lag is ``lag_frames``: ``1 / (1 + lag)``."""
    if lag_frames < 0:
        raise ConfigError(f"lag must be >= 0 frames, got {lag_frames}")
    return 1.0 / (1.0 + lag_frames)


def exponential_smooth(values, alpha: float, frames=None) -> np.ndarray:
    """Causal exponential smoothing along axis 0 (see the module docstring for the lag).

    Shape:
        values ``(T, ...)`` (e.g. ``(T, J, 3)``), frames ``(T,)`` strictly increasing frame indices
        (default ``0..T-1``) -> ``(T, ...)`` float64.

    Formula: ``y_0 = x_0``; ``y_t = y_{t-1} + a_t (x_t - y_{t-1})``, ``a_t = 1 - (1 - alpha)^{Δ_t}``.
    Lag on a ramp ``(1 - alpha) / alpha`` frames; white-noise variance ratio ``alpha / (2 - alpha)``.
    """
    if not 0.0 < alpha <= 1.0:
        raise ConfigError(f"alpha must lie in (0, 1], got {alpha}")
    x = _values(values)
    f = _frames(x, frames)
    out = np.empty_like(x)
    if len(x) == 0:
        return out
    out[0] = x[0]
    step = np.diff(f)
    for t in range(1, len(x)):
        a = 1.0 - (1.0 - alpha) ** step[t - 1]
        out[t] = out[t - 1] + a * (x[t] - out[t - 1])
    return out


def _smoothing_factor(cutoff, dt_s):
    """``alpha = 1 / (1 + τ / Δ)``, ``τ = 1 / (2 π f_c)``: the one-euro filter's smoothing factor."""
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt_s)


def one_euro(values, fps: float, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0,
             frames=None) -> np.ndarray:
    """The one-euro filter along axis 0 (Casiez et al. 2012), one cut-off per joint.

    Shape:
        values ``(T, ..., D)`` (e.g. ``(T, J, 3)``: the speed of each joint is the norm over the
        last axis; a ``(T,)`` signal is one joint of one coordinate), frames ``(T,)`` -> same shape,
        float64.

    Formula (per step, ``Δ = (f_t - f_{t-1}) / fps`` seconds): derivative
    ``d_t = (x_t - y_{t-1}) / Δ`` low-passed with ``alpha(d_cutoff)``; cut-off
    ``f_c = min_cutoff + beta * |d̂_t|``; ``y_t = y_{t-1} + alpha(f_c) (x_t - y_{t-1})`` with
    ``alpha(f) = 1 / (1 + 1 / (2 π f Δ))``. Lag ``fps / (2 π f_c)`` frames, at most
    ``fps / (2 π min_cutoff)``.

    Args:
        fps: frame rate (Hz); cut-offs are in Hz.
        min_cutoff: cut-off at rest (Hz): lower smooths more and lags more.
        beta: speed coefficient (1/m for metres): higher follows fast motion with less lag.
        d_cutoff: cut-off of the speed estimate (Hz).
    """
    if fps <= 0 or min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
        raise ConfigError(f"one_euro needs fps, min_cutoff, d_cutoff > 0 and beta >= 0; got fps={fps}, "
                          f"min_cutoff={min_cutoff}, d_cutoff={d_cutoff}, beta={beta}")
    x = _values(values)
    f = _frames(x, frames)
    flat = x.reshape(len(x), -1, 1) if x.ndim == 1 else x.reshape(len(x), -1, x.shape[-1])
    out = np.empty_like(flat)
    if len(x) == 0:
        return out.reshape(x.shape)
    out[0] = flat[0]
    speed = np.zeros(flat.shape[1])
    for t in range(1, len(x)):
        dt = (f[t] - f[t - 1]) / fps
        raw = np.linalg.norm(flat[t] - out[t - 1], axis=-1) / dt
        speed = speed + _smoothing_factor(d_cutoff, dt) * (raw - speed)
        a = _smoothing_factor(min_cutoff + beta * speed, dt)
        out[t] = out[t - 1] + a[:, None] * (flat[t] - out[t - 1])
    return out.reshape(x.shape)


def one_euro_lag(fps: float, min_cutoff: float) -> float:
    """The one-euro filter's lag at rest (and with ``beta = 0``) in frames: ``fps / (2 π min_cutoff)``."""
    return fps / (2.0 * math.pi * min_cutoff)


def centred_smooth(values, sigma: float, frames=None) -> np.ndarray:
    """Offline Gaussian smoothing along axis 0, without lag (see the module docstring).

    Shape:
        values ``(T, ...)``, frames ``(T,)`` (gaps weigh by frame distance) -> ``(T, ...)`` float64.

    Formula: ``y_t = Σ_s w_ts x_s / Σ_s w_ts``, ``w_ts = exp(-(f_s - f_t)² / (2 sigma²))`` for
    ``|f_s - f_t| <= 3 sigma``. ``sigma = 0`` returns the values unchanged.
    """
    if sigma < 0:
        raise ConfigError(f"sigma must be >= 0 frames, got {sigma}")
    x = _values(values)
    f = _frames(x, frames)
    if sigma == 0 or len(x) < 2:
        return x.copy()
    flat = x.reshape(len(x), -1)
    out = np.empty_like(flat)
    reach = 3.0 * sigma
    lo = np.searchsorted(f, f - reach, side="left")
    hi = np.searchsorted(f, f + reach, side="right")
    for t in range(len(x)):
        w = np.exp(-0.5 * ((f[lo[t]:hi[t]] - f[t]) / sigma) ** 2)
        out[t] = w @ flat[lo[t]:hi[t]] / w.sum()
    return out.reshape(x.shape)


def centred_noise_ratio(sigma: float) -> float:
    """The centred filter's white-noise variance ratio in the interior: ``Σ w² / (Σ w)²``."""
    if sigma == 0:
        return 1.0
    k = np.arange(-math.floor(3 * sigma), math.floor(3 * sigma) + 1)
    w = np.exp(-0.5 * (k / sigma) ** 2)
    return float((w**2).sum() / w.sum() ** 2)


#: The parameters each filter takes (:func:`smooth_track`), with their defaults.
PARAMS = {"exponential": {"alpha": 0.5}, "one-euro": {"min_cutoff": 1.0, "beta": 0.0, "d_cutoff": 1.0},
          "centred": {"sigma": 2.0}}


def smooth_track(values, method: str = "one-euro", frames=None, fps: float = 25.0, **params) -> np.ndarray:
    """One track's values ``(T, ...)`` through the filter ``method`` (:data:`METHODS`).

    ``params`` (:data:`PARAMS`): ``alpha`` (exponential, default 0.5: one frame of lag),
    ``min_cutoff``, ``beta``, ``d_cutoff`` (one-euro; defaults 1.0 Hz, 0.0, 1.0 Hz: a lag of
    ``fps / 2π`` frames, 4 at 25 fps), ``sigma`` (centred, default 2 frames).
    """
    if method not in PARAMS:
        raise ConfigError(f"unknown smoothing method {method!r}; expected one of {METHODS}")
    unknown = sorted(set(params) - set(PARAMS[method]))
    if unknown:
        raise ConfigError(f"smoothing method {method!r} takes {sorted(PARAMS[method])}, not {unknown}")
    p = {**PARAMS[method], **params}
    if method == "exponential":
        return exponential_smooth(values, p["alpha"], frames)
    if method == "one-euro":
        return one_euro(values, fps, p["min_cutoff"], p["beta"], p["d_cutoff"], frames)
    return centred_smooth(values, p["sigma"], frames)


def smooth_tracks(values, track_id, frame_index, method: str = "one-euro", fps: float = 25.0,
                  **params) -> np.ndarray:
    """Smooth predictions along every track.

    Shape:
        values ``(N, ...)`` (e.g. ``(N, 17, 3)`` joints of N crops, any order), ``track_id (N,)``,
        ``frame_index (N,)`` (unique within a track) -> ``(N, ...)`` float64, each track filtered in
        frame order by :func:`smooth_track` (``method``, ``fps``, ``params``), rows in the input order.
    """
    x = _values(values)
    tracks = np.asarray(track_id).reshape(-1)
    index = np.asarray(frame_index).reshape(-1)
    if tracks.shape != (len(x),) or index.shape != (len(x),):
        raise MaskposeError(f"track_id and frame_index must have shape ({len(x)},), got {tracks.shape} "
                            f"and {index.shape}")
    out = np.empty_like(x)
    for track in np.unique(tracks):
        rows = np.flatnonzero(tracks == track)
        rows = rows[np.argsort(index[rows], kind="stable")]
        if len(rows) > 1 and not (np.diff(index[rows]) > 0).all():
            raise MaskposeError(f"track {track}: a frame index appears twice")
        out[rows] = smooth_track(x[rows], method, index[rows], fps, **params)
    return out


__all__ = ["METHODS", "PARAMS", "alpha_for_lag", "centred_noise_ratio", "centred_smooth", "exponential_smooth", "one_euro",
           "one_euro_lag", "smooth_track", "smooth_tracks"]
