"""Person crops and masks from a static-camera video, by background subtraction.

The pipeline, frame by frame (``ExtractionConfig`` holds every setting and its default):

1. read the video with OpenCV (``cv2.VideoCapture``) or take frames from an array;
2. background subtraction with MOG2 or KNN (``cv2.createBackgroundSubtractorMOG2/KNN``); the
   model is primed on the first ``warmup`` frames (first on their per-pixel median, from which
   walking people vanish, then on the frames themselves to learn noise and flicker), and with
   ``rewind`` (the default) the video is then processed again from frame 0 so that the warm-up
   frames are not lost;
3. shadows (marked 127 by the subtractor) are dropped, only sure foreground (255) is kept;
4. morphology with elliptical kernels: an opening (removes speckle noise) then a closing (joins
   a person's pieces), then optional hole filling;
5. connected components of at least ``min_area`` pixels are the detections;
6. greedy tracking: detections are matched to live tracks by IoU with the track's predicted box
   (last box moved by its velocity), then by centroid distance; a track dies after ``max_gap``
   frames without a detection; tracks shorter than ``min_track_length`` are dropped. People who
   meet merge into one foreground blob: such a detection is marked **merged** (not silently
   fused) when the predicted boxes of two or more live tracks overlap it (IoU at least
   ``match_iou``, or half of a predicted box inside it) and one of these tracks has no detection of
   its own, or when its box jumps to more than ``merge_area_ratio`` times the area (and 1.5 times
   the width) of the track's last five unmerged boxes, those being of a steady size (within a
   factor 1.5) and away from the frame border (people entering or leaving are not compared), for
   at most ``merge_hold`` frames in a row. The blob goes to the best-matching track,
   flagged; the other tracks inside it coast on their velocity and stay alive for up to
   ``merge_hold`` frames, so they pick their person up again when the blob splits;
7. each track's square crop box (box side times ``1 + 2 margin``) is smoothed over time with a
   centred moving average;
8. image and mask are cropped at the smoothed box (zero padding outside the frame) and resized to
   ``resolution`` (mask: only that detection's own component, thresholded to {0, 1}).

Memory stays bounded for long videos: it is a two-pass extraction. Pass 1 (steps 2 to 6) keeps
only one frame in memory; each detection's mask patch (bit-packed, cut to its bounding box) goes
to a chunk file in a temporary folder every ``chunk_frames`` frames, and only small per-detection
records (frame, box, track) stay in memory. Once the tracks are known, the number of samples N is
known: pass 2 re-reads the video, loads one chunk at a time, crops and writes straight into the
memory-mapped ``DatasetWriter`` arrays. The dataset holds ``image``, ``mask`` (no labels) and
``valid`` (1 where the crop sees the frame, 0 on the zero padding of a box that leaves it:
:func:`frame_valid`; the mask losses and the IoU never count the padding), plus the per-sample
provenance fields ``frame_index``, ``track_id``, ``crop_box`` (x0, y0, x1, y1 in
source pixels) and ``merged`` (1 where the crop's blob holds more than one person, see step 6);
``meta.json`` attrs record the source video, its size and rate, the config, the track lengths and
the number of merged samples.

Frames given as arrays are RGB ``(T, H, W, 3)`` uint8; video files are read as BGR by OpenCV and
converted to RGB, so stored crops are RGB either way.

Limits: the camera must not move (``DataError`` when the foreground covers more than
``max_foreground_fraction`` of the frame for ``max_bad_frames`` frames in a row), people walking
side by side merge into one component (marked ``merged``; the blob is not split), a person
standing still for long is absorbed into the background, and a person present during the warm-up
can leave a short-lived "ghost" where they stood (usually dropped by ``min_track_length``).
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from maskpose.data.dataset import DatasetWriter, MaskposeDataset
from maskpose.errors import ConfigError, DataError

#: Fields written by ``extract_video``.
VIDEO_FIELDS = ("image", "mask", "valid", "frame_index", "track_id", "crop_box", "merged")
#: Unmerged detections a track needs before it can be hidden inside another's blob (and make it merged).
ESTABLISHED_DETECTIONS = 5


@dataclass(frozen=True)
class ExtractionConfig:
    """All settings of the video extraction, with their defaults in one place.

    Pixel quantities (``min_area``) are in source-frame pixels.
    """

    # background subtraction
    method: str = "mog2"  # "mog2" or "knn"
    history: int = 500  # frames the background model remembers
    threshold: float | None = None  # MOG2 varThreshold (default 16) / KNN dist2Threshold (default 400)
    detect_shadows: bool = True  # shadows are marked 127 and dropped
    warmup: int = 30  # frames used to prime the model before any detection
    warmup_learning_rate: float = -1.0  # -1: OpenCV's automatic rate (1 / frames seen)
    learning_rate: float = -1.0  # after warm-up; -1: automatic (1 / min(2 * frames, history))
    rewind: bool = True  # after warm-up, process again from frame 0 (the warm-up frames are kept)
    prime_median: bool = True  # first feed the per-pixel median of the warm-up frames (a clean background)
    blur: int = 0  # odd Gaussian pre-blur kernel size in pixels (0: none)
    # mask cleaning
    open_radius: int = 1  # elliptical opening radius in pixels (0: none)
    close_radius: int = 3  # elliptical closing radius in pixels (0: none)
    fill_holes: bool = True
    min_area: int = 120  # smallest connected component kept, source pixels
    # tracking
    match_iou: float = 0.1  # least IoU between predicted track box and detection
    max_centroid_shift: float = 0.6  # fallback match: centroid distance / track box height
    max_gap: int = 5  # frames a track may go undetected before it ends
    min_track_length: int = 10  # detections; shorter tracks are dropped
    merge_area_ratio: float = 1.8  # a box area above this times the track's steady size: merged blob
    merge_hold: int = 50  # frames a track hidden inside a merged blob is kept alive (0: only max_gap)
    # crops
    smooth_window: int = 5  # centred moving average over a track's crop boxes (1: none)
    margin: float = 0.15  # crop side = longer box side * (1 + 2 margin)
    resolution: int = 128  # output crop size (square)
    # limits and bad-video detection
    max_frames: int | None = None  # stop after this many frames
    max_foreground_fraction: float = 0.5  # more foreground than this in a frame is "bad"
    max_bad_frames: int = 10  # this many bad frames in a row after warm-up -> DataError
    chunk_frames: int = 256  # frames per temporary chunk of mask patches (bounds memory)

    def __post_init__(self) -> None:
        checks = [
            (self.method in ("mog2", "knn"), f"method must be 'mog2' or 'knn', got {self.method!r}"),
            (self.history >= 1, f"history must be >= 1, got {self.history}"),
            (self.warmup >= 0, f"warmup must be >= 0, got {self.warmup}"),
            (self.learning_rate == -1 or 0 <= self.learning_rate <= 1,
             f"learning_rate must be -1 (automatic) or in [0, 1], got {self.learning_rate}"),
            (self.warmup_learning_rate == -1 or 0 <= self.warmup_learning_rate <= 1,
             f"warmup_learning_rate must be -1 (automatic) or in [0, 1], got {self.warmup_learning_rate}"),
            (self.blur == 0 or (self.blur > 0 and self.blur % 2 == 1), f"blur must be 0 or odd, got {self.blur}"),
            (self.open_radius >= 0 and self.close_radius >= 0, "open_radius and close_radius must be >= 0"),
            (self.min_area >= 1, f"min_area must be >= 1, got {self.min_area}"),
            (0 <= self.match_iou <= 1, f"match_iou must be in [0, 1], got {self.match_iou}"),
            (self.max_gap >= 0, f"max_gap must be >= 0, got {self.max_gap}"),
            (self.min_track_length >= 1, f"min_track_length must be >= 1, got {self.min_track_length}"),
            (self.merge_area_ratio > 1, f"merge_area_ratio must be > 1, got {self.merge_area_ratio}"),
            (self.merge_hold >= 0, f"merge_hold must be >= 0, got {self.merge_hold}"),
            (self.smooth_window >= 1, f"smooth_window must be >= 1, got {self.smooth_window}"),
            (self.margin >= 0, f"margin must be >= 0, got {self.margin}"),
            (self.resolution >= 8, f"resolution must be >= 8, got {self.resolution}"),
            (self.max_frames is None or self.max_frames >= 1, f"max_frames must be >= 1, got {self.max_frames}"),
            (0 < self.max_foreground_fraction <= 1,
             f"max_foreground_fraction must be in (0, 1], got {self.max_foreground_fraction}"),
            (self.max_bad_frames >= 1, f"max_bad_frames must be >= 1, got {self.max_bad_frames}"),
            (self.chunk_frames >= 1, f"chunk_frames must be >= 1, got {self.chunk_frames}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"ExtractionConfig: {message}")


# --------------------------------------------------------------------------------------------
# frame sources


class FrameSource:
    """Frames of a video file or of an RGB array, re-readable from the start (for the two passes).

    Args:
        video: a path to a video file, or an array ``(T, H, W, 3)`` uint8 RGB (or ``(T, H, W)`` grey).
        max_frames: read at most this many frames.
    """

    def __init__(self, video: str | os.PathLike | np.ndarray | Sequence[np.ndarray], max_frames: int | None = None):
        self.max_frames = max_frames
        self.fps: float | None = None
        if isinstance(video, (str, os.PathLike)):
            self.path: Path | None = Path(video)
            self.frames = None
            self._probe()
        else:
            self.path = None
            frames = np.asarray(video)
            if frames.ndim == 3:
                frames = np.repeat(frames[..., None], 3, axis=-1)
            if frames.ndim != 4 or frames.shape[-1] != 3:
                raise DataError(f"video frames must have shape (T, H, W, 3) or (T, H, W), got {frames.shape}")
            if len(frames) == 0:
                raise DataError("video frames: the array has no frames")
            self.frames = frames.astype(np.uint8, copy=False)
            self.height, self.width = frames.shape[1:3]

    @property
    def name(self) -> str:
        return str(self.path) if self.path is not None else "<array>"

    def _open(self):
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise DataError(f"{self.path}: cannot open the video (not a video file, or a codec OpenCV cannot read)")
        return cap

    def _probe(self) -> None:
        if not self.path.exists():
            raise DataError(f"{self.path}: video file does not exist")
        if self.path.is_dir():
            raise DataError(f"{self.path}: is a folder, expected a video file")
        if self.path.stat().st_size == 0:
            raise DataError(f"{self.path}: the video file is empty (0 bytes)")
        cap = self._open()
        try:
            ok, frame = cap.read()
            if not ok or frame is None:
                raise DataError(f"{self.path}: the video has no readable frames")
            self.height, self.width = frame.shape[:2]
            fps = cap.get(cv2.CAP_PROP_FPS)
            self.fps = float(fps) if fps and fps > 0 else None
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            self.frame_count_hint = count if count > 0 else None
        finally:
            cap.release()

    def __len__(self) -> int:
        """Frames to process if known (arrays), else the container's frame count hint (or 0)."""
        n = len(self.frames) if self.frames is not None else (self.frame_count_hint or 0)
        return min(n, self.max_frames) if self.max_frames else n

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(frame_index, rgb_frame)`` from the start."""
        limit = self.max_frames if self.max_frames is not None else np.inf
        if self.frames is not None:
            for i in range(int(min(len(self.frames), limit))):
                yield i, self.frames[i]
            return
        cap = self._open()
        try:
            i = 0
            while i < limit:
                ok, frame = cap.read()
                if not ok or frame is None:
                    break
                if frame.ndim == 2:
                    frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
                else:
                    frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                if frame.shape[:2] != (self.height, self.width):
                    raise DataError(f"{self.path}: frame {i} has size {frame.shape[:2]}, "
                                    f"the first frame {(self.height, self.width)}")
                yield i, frame
                i += 1
        finally:
            cap.release()


# --------------------------------------------------------------------------------------------
# video files

#: Codec per container suffix (OpenCV fourcc), in the order tried.
CODECS = {".mp4": ("mp4v",), ".avi": ("FMP4", "MJPG")}


def open_video_writer(path: str | os.PathLike, fps: float, size: tuple[int, int]):
    """An opened ``cv2.VideoWriter`` for ``path`` (``.mp4``: ``mp4v``; ``.avi``: ``FMP4``, else
    ``MJPG``) of frame size ``(W, H)``, and the fourcc used. Frames written to it are BGR."""
    path = Path(path)
    codecs = CODECS.get(path.suffix.lower())
    if codecs is None:
        raise ConfigError(f"{path}: the video must end in {' or '.join(CODECS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    for fourcc in codecs:
        writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), float(fps),
                                 (int(size[0]), int(size[1])))
        if writer.isOpened():
            return writer, fourcc
        writer.release()
    raise DataError(f"{path}: OpenCV cannot write this video ({', '.join(codecs)} tried)")


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float) -> str:
    """Write RGB frames ``(T, H, W, 3)`` uint8 with OpenCV and check that they all read back;
    returns the fourcc used. Raises ``DataError`` when the video does not read back."""
    path = Path(path)
    height, width = frames.shape[1:3]
    writer, fourcc = open_video_writer(path, fps, (width, height))
    try:
        for frame in frames:
            writer.write(np.ascontiguousarray(frame[..., ::-1]))
    finally:
        writer.release()
    decoded = count_frames(path)
    if decoded != len(frames):
        raise DataError(f"{path}: wrote {len(frames)} frames with {fourcc} but OpenCV reads back {decoded}")
    return fourcc


def count_frames(path: str | os.PathLike) -> int:
    """Frames OpenCV decodes from a video file (0 when it cannot open it)."""
    cap = cv2.VideoCapture(str(path))
    n = 0
    try:
        while cap.isOpened():
            ok, _ = cap.read()
            if not ok:
                break
            n += 1
    finally:
        cap.release()
    return n


# --------------------------------------------------------------------------------------------
# foreground


def _ellipse(radius: int):
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def make_subtractor(config: ExtractionConfig):
    """The OpenCV background subtractor described by ``config``."""
    if config.method == "mog2":
        threshold = 16.0 if config.threshold is None else float(config.threshold)
        return cv2.createBackgroundSubtractorMOG2(history=config.history, varThreshold=threshold,
                                                  detectShadows=config.detect_shadows)
    threshold = 400.0 if config.threshold is None else float(config.threshold)
    return cv2.createBackgroundSubtractorKNN(history=config.history, dist2Threshold=threshold,
                                             detectShadows=config.detect_shadows)


def clean_mask(raw: np.ndarray, config: ExtractionConfig) -> np.ndarray:
    """Subtractor output (0 / 127 shadow / 255) -> cleaned uint8 {0, 1} mask (before the area filter)."""
    mask = (raw == 255).astype(np.uint8)
    if config.open_radius:
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _ellipse(config.open_radius))
    if config.close_radius:
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, _ellipse(config.close_radius),
                                borderType=cv2.BORDER_CONSTANT, borderValue=0)
    if config.fill_holes:
        mask = _fill_holes(mask)
    return mask


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill background regions not connected to the frame border."""
    h, w = mask.shape
    padded = np.zeros((h + 2, w + 2), np.uint8)
    padded[1:-1, 1:-1] = mask
    flood = padded.copy()
    cv2.floodFill(flood, np.zeros((h + 4, w + 4), np.uint8), (0, 0), 1)
    holes = flood[1:-1, 1:-1] == 0
    return (mask.astype(bool) | holes).astype(np.uint8)


@dataclass
class Detection:
    """One connected foreground component: box ``(x0, y0, x1, y1)`` (x1, y1 exclusive), its area,
    centroid ``(x, y)`` and its mask cut to the box (bool)."""

    box: tuple[int, int, int, int]
    area: int
    centroid: tuple[float, float]
    patch: np.ndarray


def detect(mask: np.ndarray, min_area: int) -> list[Detection]:
    """Connected components (8-connected) of a {0, 1} mask with at least ``min_area`` pixels."""
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    out = []
    for k in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[k])
        if area < min_area:
            continue
        patch = labels[y : y + h, x : x + w] == k
        out.append(Detection((x, y, x + w, y + h), area, (float(centroids[k][0]), float(centroids[k][1])), patch))
    return out


@dataclass
class ForegroundFrame:
    """One processed frame: its index, the RGB frame, the cleaned mask (before the area filter),
    the detections, and the raw foreground fraction (shadows excluded)."""

    index: int
    frame: np.ndarray
    mask: np.ndarray
    detections: list[Detection]
    foreground_fraction: float


def foreground_frames(source: FrameSource, config: ExtractionConfig) -> Iterator[ForegroundFrame]:
    """Run the background model over a source: warm-up, then yield every processed frame.

    With ``config.rewind`` the frames from 0 are yielded (after priming on the first ``warmup``
    frames); without it, the first ``warmup`` frames only train the model and are not yielded.
    Raises ``DataError`` when the foreground covers more than ``max_foreground_fraction`` of the
    frame for ``max_bad_frames`` processed frames in a row (moving camera or abrupt lighting).
    """
    cv2.setRNGSeed(0)
    subtractor = make_subtractor(config)

    def prepare(frame: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(frame, (config.blur, config.blur), 0) if config.blur else frame

    frames = iter(source)
    seen = 0
    if config.warmup:
        warm = []
        for _, frame in frames:
            warm.append(prepare(frame))
            if len(warm) >= config.warmup:
                break
        seen = len(warm)
        if config.prime_median and warm:
            # people walking through the warm-up frames vanish from the median: the model starts from
            # a clean background, then learns the noise and flicker from the warm-up frames themselves
            median = np.median(np.stack(warm), axis=0).astype(np.uint8)
            for _ in range(len(warm)):
                subtractor.apply(median, learningRate=-1)
        for frame in warm:
            subtractor.apply(frame, learningRate=config.warmup_learning_rate)
        del warm
        if config.rewind:
            frames = iter(source)
    if seen == 0 and config.warmup:
        raise DataError(f"{source.name}: the video has no readable frames")
    bad_run = 0
    for i, frame in frames:
        raw = subtractor.apply(prepare(frame), learningRate=config.learning_rate)
        fraction = float(np.count_nonzero(raw == 255)) / raw.size
        # frames inside the warm-up (rewind) are never "bad": the model is still young there
        if i >= config.warmup and fraction > config.max_foreground_fraction:
            bad_run += 1
            if bad_run >= config.max_bad_frames:
                raise DataError(
                    f"{source.name}: the foreground covers more than {config.max_foreground_fraction:.0%} of the "
                    f"frame for {bad_run} frames in a row (up to frame {i}); the camera seems to move, or the "
                    "lighting changes abruptly. Extraction by background subtraction needs a static camera "
                    "and steady light."
                )
        else:
            bad_run = 0
        mask = clean_mask(raw, config)
        yield ForegroundFrame(i, frame, mask, detect(mask, config.min_area), fraction)


def foreground_masks(video, config: ExtractionConfig | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """``(frame_index, mask)`` per processed frame: the union of the kept components, bool (H, W)."""
    config = config or ExtractionConfig()
    source = video if isinstance(video, FrameSource) else FrameSource(video, config.max_frames)
    for fg in foreground_frames(source, config):
        mask = np.zeros(fg.mask.shape, bool)
        for d in fg.detections:
            x0, y0, x1, y1 = d.box
            mask[y0:y1, x0:x1] |= d.patch
        yield fg.index, mask


def extraction_iou(video, gt_masks, config: ExtractionConfig | None = None, per_frame: bool = False):
    """Mean per-frame IoU of the extracted foreground against ground-truth masks, after warm-up.

    Args:
        video: a video path or frames ``(T, H, W, 3)`` uint8 RGB (any source: synthetic blobs,
            rendered bodies in a scene, ...).
        gt_masks: ``(T, H, W)`` ground-truth person masks (non-zero = person), aligned with frames.
        config: the extraction settings (``ExtractionConfig()`` by default).
        per_frame: also return the ``{frame_index: IoU}`` of every scored frame.

    Frames with index ``< config.warmup`` are not scored, nor frames where both masks are empty.
    """
    config = config or ExtractionConfig()
    gt = np.asarray(gt_masks)
    scores: dict[int, float] = {}
    for i, mask in foreground_masks(video, config):
        if i < config.warmup:
            continue
        if i >= len(gt):
            raise DataError(f"gt_masks has {len(gt)} frames, the video has more (frame {i})")
        truth = gt[i] != 0
        if truth.shape != mask.shape:
            raise DataError(f"gt_masks frame {i} has shape {truth.shape}, the video {mask.shape}")
        union = np.count_nonzero(truth | mask)
        if union:
            scores[i] = np.count_nonzero(truth & mask) / union
    if not scores:
        raise DataError(f"extraction_iou: no frame after the {config.warmup} warm-up frames to score")
    mean = float(np.mean(list(scores.values())))
    return (mean, scores) if per_frame else mean


# --------------------------------------------------------------------------------------------
# tracking


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of boxes ``(n, 4)`` and ``(m, 4)`` as x0, y0, x1, y1."""
    a = np.asarray(a, float).reshape(-1, 4)
    b = np.asarray(b, float).reshape(-1, 4)
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def touches_border(box, frame_size: tuple[int, int] | None) -> bool:
    """Whether a box ``(x0, y0, x1, y1)`` comes within 2 % of the larger frame side (at least 2 px) of
    the border of a frame of ``frame_size`` ``(W, H)``: a person entering or leaving, maybe cut
    (``False`` when the size is not known)."""
    if frame_size is None:
        return False
    margin = max(2.0, 0.02 * max(frame_size))
    return bool(box[0] <= margin or box[1] <= margin or box[2] >= frame_size[0] - margin
                or box[3] >= frame_size[1] - margin)


@dataclass
class Track:
    """A person track: its detections as frame indices, boxes and detection ids (pass-1 records),
    whether each detection is a merged blob of several people, and the last frame the track was
    hidden inside another track's merged blob (-1: never)."""

    id: int
    frames: list[int] = field(default_factory=list)
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    detections: list[int] = field(default_factory=list)
    merged: list[bool] = field(default_factory=list)
    hidden_frame: int = -1
    jump_run: int = 0  # consecutive detections marked merged by their size alone

    @property
    def last_frame(self) -> int:
        return self.frames[-1]

    def reference_size(self, count: int = 5, frame_size: tuple[int, int] | None = None,
                       stable: float = 1.5) -> tuple[float, float] | None:
        """Median area and width of the last ``count`` unmerged boxes away from the border of a frame
        of ``frame_size`` ``(W, H)``: the person's own size. ``None`` while the track has fewer than
        ``count`` of them or their areas still vary by more than a factor ``stable`` (a person
        coming into view, a young background model)."""
        own = [b for b, m in zip(self.boxes[::-1], self.merged[::-1])
               if not m and not touches_border(b, frame_size)][:count]
        if len(own) < count:
            return None
        areas = np.array([(b[2] - b[0]) * (b[3] - b[1]) for b in own], float)
        if areas.max() > stable * max(areas.min(), 1.0):
            return None
        return float(np.median(areas)), float(np.median([b[2] - b[0] for b in own]))

    def own_detections(self) -> int:
        """The detections of this track that were not merged blobs."""
        return sum(not m for m in self.merged)

    def append(self, frame: int, box, detection: int, merged: bool) -> None:
        self.frames.append(frame)
        self.boxes.append(tuple(box))
        self.detections.append(detection)
        self.merged.append(bool(merged))

    def __len__(self) -> int:
        return len(self.frames)

    def predicted_box(self, frame: int) -> np.ndarray:
        """The last box moved by the velocity of the last two detections (constant velocity). A
        track that met someone (a merged blob, or hidden in another's) is predicted from its own
        unmerged detections only, with the velocity over the last five of them (steadier through
        the gap), so it coasts through a merge on its own motion."""
        met = self.hidden_frame >= 0 or any(self.merged)
        own = ([i for i, m in enumerate(self.merged) if not m] or list(range(len(self.frames))))[-(5 if met else 2):]
        last = np.asarray(self.boxes[own[-1]], float)
        dt = frame - self.frames[own[-1]]
        if len(own) < 2:
            return last
        step = (last - np.asarray(self.boxes[own[0]], float)) / max(1, self.frames[own[-1]] - self.frames[own[0]])
        shift = (step[0] + step[2]) / 2, (step[1] + step[3]) / 2
        return last + dt * np.array([shift[0], shift[1], shift[0], shift[1]])


class GreedyTracker:
    """Frame-to-frame greedy matching of detections to tracks (IoU first, then centroid distance),
    with merged blobs marked (module docstring, step 6)."""

    def __init__(self, config: ExtractionConfig, frame_size: tuple[int, int] | None = None):
        self.config = config
        self.frame_size = frame_size  # (W, H): boxes at the border are not used for the area-jump test
        self.live: list[Track] = []
        self.finished: list[Track] = []
        self._next_id = 0

    def update(self, frame: int, boxes: Sequence[tuple[int, int, int, int]], ids: Sequence[int]) -> None:
        cfg = self.config
        still = []
        for track in self.live:
            alive = frame - track.last_frame <= cfg.max_gap + 1 or (
                frame - track.hidden_frame <= cfg.max_gap + 1 and frame - track.last_frame <= cfg.merge_hold + 1)
            (still if alive else self.finished).append(track)
        self.live = still
        unmatched_tracks = set(range(len(self.live)))
        unmatched_dets = set(range(len(boxes)))
        pairs: list[tuple[int, int]] = []
        if self.live and len(boxes):
            predicted = np.stack([t.predicted_box(frame) for t in self.live])
            dets = np.asarray(boxes, float)
            iou = box_iou(predicted, dets)
            for flat in np.argsort(-iou, axis=None, kind="stable"):
                ti, di = np.unravel_index(flat, iou.shape)
                if iou[ti, di] < max(cfg.match_iou, 1e-9):
                    break
                if ti in unmatched_tracks and di in unmatched_dets:
                    pairs.append((ti, di))
                    unmatched_tracks.discard(ti)
                    unmatched_dets.discard(di)
            if unmatched_tracks and unmatched_dets:
                tl, dl = sorted(unmatched_tracks), sorted(unmatched_dets)
                pc = (predicted[tl][:, :2] + predicted[tl][:, 2:]) / 2
                dc = (dets[dl][:, :2] + dets[dl][:, 2:]) / 2
                height = np.maximum(predicted[tl][:, 3] - predicted[tl][:, 1], 1.0)
                dist = np.linalg.norm(pc[:, None] - dc[None], axis=-1) / height[:, None]
                for flat in np.argsort(dist, axis=None, kind="stable"):
                    a, b = np.unravel_index(flat, dist.shape)
                    if dist[a, b] > cfg.max_centroid_shift:
                        break
                    ti, di = tl[a], dl[b]
                    if ti in unmatched_tracks and di in unmatched_dets:
                        pairs.append((ti, di))
                        unmatched_tracks.discard(ti)
                        unmatched_dets.discard(di)
        # a track left without a detection whose predicted box overlaps one is hidden in that blob;
        # only an established track counts (a few detections of its own): a short-lived noise blob
        # or a ghost beside a person would otherwise mark that person merged for merge_hold frames
        established = min(ESTABLISHED_DETECTIONS, cfg.min_track_length)
        hidden = [[t for t in tracks if t in unmatched_tracks and self.live[t].own_detections() >= established]
                  for tracks in self._overlaps(frame, boxes)]
        for ti, di in pairs:
            track = self.live[ti]
            x0, y0, x1, y1 = boxes[di]
            ref = None if touches_border(boxes[di], self.frame_size) else track.reference_size(
                frame_size=self.frame_size)
            jump = ref is not None and (x1 - x0) * (y1 - y0) > cfg.merge_area_ratio * ref[0] and (x1 - x0) > 1.5 * ref[1]
            # a blob that stays large for merge_hold frames without a second track is the person's new size
            jump = jump and track.jump_run < max(cfg.merge_hold, 1)
            track.jump_run = track.jump_run + 1 if jump and not hidden[di] else 0
            track.append(frame, boxes[di], ids[di], bool(hidden[di]) or jump)
        for di in sorted(unmatched_dets):
            track = Track(self._next_id)
            self._next_id += 1
            track.append(frame, boxes[di], ids[di], len(hidden[di]) >= 2)
            self.live.append(track)
        for tracks in hidden:
            for ti in tracks:
                self.live[ti].hidden_frame = frame

    def _overlaps(self, frame: int, boxes: Sequence[tuple[int, int, int, int]]) -> list[list[int]]:
        """Per detection, the live tracks (indices) whose predicted box overlaps it: IoU at least
        ``match_iou``, or at least half of the predicted box inside the detection."""
        if not self.live or not len(boxes):
            return [[] for _ in boxes]
        predicted = np.stack([t.predicted_box(frame) for t in self.live])
        dets = np.asarray(boxes, float).reshape(-1, 4)
        iou = box_iou(predicted, dets)
        ix = np.clip(np.minimum(predicted[:, None, 2], dets[None, :, 2])
                     - np.maximum(predicted[:, None, 0], dets[None, :, 0]), 0, None)
        iy = np.clip(np.minimum(predicted[:, None, 3], dets[None, :, 3])
                     - np.maximum(predicted[:, None, 1], dets[None, :, 1]), 0, None)
        area = np.maximum((predicted[:, 2] - predicted[:, 0]) * (predicted[:, 3] - predicted[:, 1]), 1e-9)
        covered = ix * iy / area[:, None]
        hit = (iou >= max(self.config.match_iou, 1e-9)) | (covered >= 0.5)
        return [np.flatnonzero(hit[:, d]).tolist() for d in range(len(dets))]

    def close(self) -> list[Track]:
        """All tracks (live and finished), ordered by id."""
        tracks = sorted(self.finished + self.live, key=lambda t: t.id)
        self.live, self.finished = [], []
        return tracks


def track_frames(frames: Sequence[Sequence[tuple[int, int, int, int]]], config: ExtractionConfig | None = None
                 ) -> list[Track]:
    """Track boxes given per frame (a helper for tests and other detectors); all tracks, unfiltered."""
    tracker = GreedyTracker(config or ExtractionConfig())
    n = 0
    for t, boxes in enumerate(frames):
        tracker.update(t, boxes, list(range(n, n + len(boxes))))
        n += len(boxes)
    return tracker.close()


# --------------------------------------------------------------------------------------------
# crops


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average along axis 0; the window shrinks at both ends (no edge bias)."""
    values = np.asarray(values, float)
    if window <= 1 or len(values) < 2:
        return values.copy()
    # A track shorter than the window gets the widest window that fits: np.convolve(mode="same")
    # returns the longer of its inputs, so a kernel longer than the track would change its length.
    half = min(window // 2, (len(values) - 1) // 2)
    kernel = np.ones(2 * half + 1)
    flat = values.reshape(len(values), -1)
    out = np.empty_like(flat)
    ones = np.convolve(np.ones(len(values)), kernel, mode="same")
    for c in range(flat.shape[1]):
        out[:, c] = np.convolve(flat[:, c], kernel, mode="same") / ones
    return out.reshape(values.shape)


def crop_boxes(boxes: Sequence[tuple[int, int, int, int]], config: ExtractionConfig) -> np.ndarray:
    """Smoothed square crop boxes ``(n, 4)`` (x0, y0, x1, y1, integer-valued) for one track's boxes."""
    b = np.asarray(boxes, float).reshape(-1, 4)
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    side = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) * (1 + 2 * config.margin)
    cx, cy, side = smooth(np.stack([cx, cy, side], 1), config.smooth_window).T
    side = np.maximum(np.round(side), 2)
    x0, y0 = np.round(cx - side / 2), np.round(cy - side / 2)
    return np.stack([x0, y0, x0 + side, y0 + side], 1)


def crop_square(image: np.ndarray, box, size: int, interpolation: int | None = None) -> np.ndarray:
    """Cut ``box`` (x0, y0, x1, y1, square, may leave the frame: zero padding) and resize to size²."""
    x0, y0, x1, y1 = (int(v) for v in box)
    h, w = image.shape[:2]
    out = np.zeros((y1 - y0, x1 - x0) + image.shape[2:], image.dtype)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    if interpolation is None:
        interpolation = cv2.INTER_AREA if out.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(out, (size, size), interpolation=interpolation)


def frame_valid(box, frame_size: tuple[int, int], res: int) -> np.ndarray:
    """Where a ``res``-pixel crop cut at ``box`` (x0, y0, x1, y1; :func:`~maskpose.data.video.crop_square`)
    sees a frame of ``frame_size`` ``(H, W)``: ``(res, res)`` uint8, 0 on its zero padding, cropped
    and thresholded exactly as the extracted masks are (so a mask always lies inside it)."""
    h, w = (int(v) for v in frame_size)
    x0, y0, x1, y1 = (int(v) for v in box)
    if x0 >= 0 and y0 >= 0 and x1 <= w and y1 <= h:
        return np.ones((res, res), np.uint8)
    return (crop_square(np.full((h, w), 255, np.uint8), box, res) >= 128).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# extraction


@dataclass
class ExtractionResult:
    """What ``extract_video`` wrote: the dataset folder, frames processed, kept tracks
    ``{track_id: length}``, dropped short tracks, the number of samples and of merged samples."""

    path: Path
    num_frames: int
    tracks: dict[int, int]
    dropped_tracks: int
    num_samples: int
    merged_samples: int = 0


class _PatchStore:
    """Bit-packed detection mask patches in chunk files of a temporary folder (bounded memory)."""

    def __init__(self, folder: Path, chunk_frames: int):
        self.folder, self.chunk_frames = folder, chunk_frames
        self.pending: list[np.ndarray] = []
        self.shapes: list[tuple[int, int]] = []
        self.chunk_of: list[int] = []  # detection id -> chunk
        self.chunk = 0
        self._cache: tuple[int, dict[int, np.ndarray]] | None = None
        self.first_id = 0  # first detection id of the pending chunk

    def add(self, patch: np.ndarray) -> int:
        self.pending.append(np.packbits(patch, axis=None))
        self.shapes.append(patch.shape)
        self.chunk_of.append(self.chunk)
        return len(self.chunk_of) - 1

    def end_frame(self, frame: int) -> None:
        if (frame + 1) % self.chunk_frames == 0:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            ids = np.arange(self.first_id, self.first_id + len(self.pending))
            lengths = np.array([len(p) for p in self.pending])
            np.savez(self.folder / f"chunk_{self.chunk:06d}.npz", ids=ids, lengths=lengths,
                     data=np.concatenate(self.pending))
            self.first_id += len(self.pending)
            self.pending = []
        self.chunk += 1

    def get(self, det_id: int) -> np.ndarray:
        chunk = self.chunk_of[det_id]
        if self._cache is None or self._cache[0] != chunk:
            with np.load(self.folder / f"chunk_{chunk:06d}.npz") as z:
                ids, lengths, data = z["ids"], z["lengths"], z["data"]
            parts = np.split(data, np.cumsum(lengths)[:-1])
            self._cache = (chunk, dict(zip(ids.tolist(), parts)))
        h, w = self.shapes[det_id]
        return np.unpackbits(self._cache[1][det_id], count=h * w).reshape(h, w).astype(bool)


def extract_video(
    video: str | os.PathLike | np.ndarray,
    out: str | os.PathLike,
    config: ExtractionConfig | None = None,
    progress: Callable[[str, int], None] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> ExtractionResult:
    """Extract square person crops and masks from a static-camera video into a dataset folder.

    Args:
        video: path of a video file OpenCV can read, or frames ``(T, H, W, 3)`` uint8 RGB.
        out: the dataset folder to write (``DatasetWriter``: fields ``image``, ``mask``,
            ``valid``, ``frame_index``, ``track_id``, ``crop_box``, ``merged``; domain ``video``, split
            ``train``).
        config: the settings (``ExtractionConfig()`` by default).
        progress: called as ``progress(stage, frame_index)`` after each frame of each pass,
            ``stage`` being ``"track"`` (pass 1) or ``"crop"`` (pass 2).
        attrs: extra metadata merged into ``meta.json`` attrs.

    Raises ``DataError`` for an unreadable or empty video, a moving camera, or no person found.
    """
    config = config or ExtractionConfig()
    source = FrameSource(video, config.max_frames)
    with tempfile.TemporaryDirectory(prefix="maskpose-video-") as tmp:
        store = _PatchStore(Path(tmp), config.chunk_frames)
        tracks, boxes_of, num_frames = _track_people(source, config, store, progress)
        kept = _kept_tracks(tracks, config, source.name, num_frames)
        samples = _crop_samples(kept, config)
        meta_attrs = {
            "source": "video",
            "video": str(Path(video).resolve()) if source.path is not None else "<array>",
            "video_size": [int(source.width), int(source.height)],
            "video_fps": source.fps,
            "frames_processed": num_frames,
            "num_tracks": len(kept),
            "track_lengths": [len(t) for t in kept],
            "dropped_tracks": len(tracks) - len(kept),
            "merged_samples": int(sum(s[4] for s in samples)),
            "extraction": asdict(config),
            "fields_note": "frame_index, track_id, crop_box (x0, y0, x1, y1 in source pixels) per sample; "
                           "merged: 1 where the crop's blob holds more than one person",
        }
        meta_attrs.update(attrs or {})
        res = config.resolution
        with DatasetWriter(out, len(samples), (res, res), VIDEO_FIELDS, domain="video", split="train",
                           attrs=meta_attrs) as writer:  # a failure leaves what was at ``out`` as it was
            written = _write_crops(source, samples, boxes_of, store, writer, res, progress)
            if written != len(samples):
                raise DataError(f"{source.name}: the second read of the video gave fewer frames "
                                f"({written} of {len(samples)} samples cropped)")
    return ExtractionResult(Path(out), num_frames, {i: len(t) for i, t in enumerate(kept)},
                            len(tracks) - len(kept), len(samples), int(sum(s[4] for s in samples)))


def _track_people(source: FrameSource, config: ExtractionConfig, store: _PatchStore,
                  progress: Callable[[str, int], None] | None) -> tuple[list, list[tuple[int, int, int, int]], int]:
    """Pass 1: background subtraction, detection and tracking; the mask patches go to ``store``.

    Returns the closed tracks, the box of every detection (by detection id) and the frames read.
    """
    tracker = GreedyTracker(config, (source.width, source.height))
    boxes_of: list[tuple[int, int, int, int]] = []
    num_frames = 0
    for fg in foreground_frames(source, config):
        ids = []
        for d in fg.detections:
            ids.append(store.add(d.patch))
            boxes_of.append(d.box)
        tracker.update(fg.index, [d.box for d in fg.detections], ids)
        store.end_frame(fg.index)
        num_frames = fg.index + 1
        if progress:
            progress("track", fg.index)
    store.flush()
    return tracker.close(), boxes_of, num_frames


def _kept_tracks(tracks: list, config: ExtractionConfig, name: str, num_frames: int) -> list:
    """The tracks of at least ``min_track_length`` frames, by first appearance; ``DataError`` if none."""
    kept = [t for t in tracks if len(t) >= config.min_track_length]
    if not kept:
        longest = max((len(t) for t in tracks), default=0)
        raise DataError(
            f"{name}: no person track of at least {config.min_track_length} frames found in "
            f"{num_frames} frames (longest: {longest}); check that people move through a static scene, "
            "or lower min_area / min_track_length"
        )
    kept.sort(key=lambda t: (t.frames[0], t.id))
    return kept


def _crop_samples(kept: list, config: ExtractionConfig) -> list[tuple]:
    """``(frame, track, detection id, crop box, merged)`` per sample, the kept tracks renumbered
    0..K-1, sorted by frame then track."""
    samples = []
    for new_id, track in enumerate(kept):
        for frame, det, box, merged in zip(track.frames, track.detections, crop_boxes(track.boxes, config),
                                           track.merged):
            samples.append((frame, new_id, det, box, merged))
    samples.sort(key=lambda s: (s[0], s[1]))
    return samples


def _write_crops(source: FrameSource, samples: list[tuple], boxes_of: list[tuple[int, int, int, int]],
                 store: _PatchStore, writer: DatasetWriter, res: int,
                 progress: Callable[[str, int], None] | None) -> int:
    """Pass 2: re-read the frames, crop and write straight into the memory-mapped arrays; returns
    the number of samples written."""
    pos = 0
    batch: dict[str, list] = {name: [] for name in VIDEO_FIELDS}
    start = 0
    for index, frame in source:
        while pos < len(samples) and samples[pos][0] == index:
            _, track_id, det, box, merged = samples[pos]
            x0, y0, x1, y1 = boxes_of[det]
            full = np.zeros(frame.shape[:2], np.uint8)
            full[y0:y1, x0:x1] = store.get(det)
            mask = crop_square(full * 255, box, res)
            batch["image"].append(crop_square(frame, box, res))
            batch["mask"].append((mask >= 128).astype(np.uint8))
            batch["valid"].append(frame_valid(box, frame.shape[:2], res))
            batch["frame_index"].append(index)
            batch["track_id"].append(track_id)
            batch["crop_box"].append(np.asarray(box, np.float32))
            batch["merged"].append(np.uint8(merged))
            pos += 1
        if len(batch["image"]) >= 64:
            writer.write(start, {k: np.stack(v) for k, v in batch.items()})
            start += len(batch["image"])
            batch = {name: [] for name in VIDEO_FIELDS}
        if progress:
            progress("crop", index)
        if pos >= len(samples):
            break
    if batch["image"]:
        writer.write(start, {k: np.stack(v) for k, v in batch.items()})
        start += len(batch["image"])
    return start


def track_contact_sheet(dataset: str | os.PathLike, out: str | os.PathLike, max_tracks: int = 8, per_track: int = 8,
                  title: str | None = None, dpi: int = 100) -> Path:
    """A PNG grid of crops with their mask outlines (green): one row per track, the ``max_tracks``
    longest tracks, ``per_track`` evenly spaced samples each. Saved with a 256-colour palette
    (a third of the size of a true-colour PNG)."""

    ds = MaskposeDataset(dataset, fields=["image", "mask", "frame_index", "track_id"])
    track_ids = np.asarray(ds.arrays["track_id"])
    frame_ids = np.asarray(ds.arrays["frame_index"])
    ids, counts = np.unique(track_ids, return_counts=True)
    ids = ids[np.argsort(-counts, kind="stable")][:max_tracks]
    ids.sort()
    rows = len(ids)
    fig = Figure(figsize=(1.3 * per_track, 1.45 * rows + (0.4 if title else 0)))
    axes = fig.subplots(rows, per_track, squeeze=False)
    for r, tid in enumerate(ids):
        members = np.flatnonzero(track_ids == tid)
        picks = members[np.unique(np.linspace(0, len(members) - 1, per_track).round().astype(int))]
        for c in range(per_track):
            ax = axes[r, c]
            ax.axis("off")
            if c >= len(picks):
                continue
            i = picks[c]
            image = np.asarray(ds.arrays["image"][i])
            mask = np.asarray(ds.arrays["mask"][i])
            ax.imshow(image)
            if mask.any():
                ax.contour(mask, levels=[0.5], colors="#00ff66", linewidths=0.8)
            ax.set_title(f"t{tid} f{int(frame_ids[i])}", fontsize=6, pad=1)
    top = 1.0
    if title:
        fig.suptitle(title, fontsize=8)
        top = 1 - 0.25 / fig.get_figheight()
    fig.tight_layout(pad=0.2, rect=(0, 0, 1, top))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    buffer.seek(0)
    Image.open(buffer).convert("RGB").quantize(256).save(out, format="PNG", optimize=True)
    return out
