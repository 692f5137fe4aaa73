"""The README's six overlay frames of ``vtest.avi`` (issue 16) from an overlay video.

The overlay comes from ``maskpose predict``::

    maskpose predict src/maskpose/assets/source_studio_64.pt \\
        --video tests/data/video/vtest_375_474.avi --out /tmp/vt/overlay.mp4 --refine 20
    python docs/scripts/vtest_overlay.py /tmp/vt/overlay.mp4   # -> docs/images/vtest_overlay.jpg

Frames ``--frames`` (10, 26, ..., 90 by default) of the overlay, each cut to the walkway
(``--crop X Y W H``) and enlarged 1.5 times, labelled with its index, tiled two rows by three.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("overlay", type=Path, help="the overlay video of maskpose predict --video")
    p.add_argument("--out", type=Path, default=ROOT / "docs/images/vtest_overlay.jpg")
    p.add_argument("--frames", type=int, nargs=6, default=[10, 26, 42, 58, 74, 90])
    p.add_argument("--crop", type=int, nargs=4, default=[120, 30, 320, 240], metavar=("X", "Y", "W", "H"),
                   help="the part of each frame shown (pixels of the video)")
    args = p.parse_args()
    x, y, w, h = args.crop
    capture = cv2.VideoCapture(str(args.overlay))
    if not capture.isOpened():
        raise SystemExit(f"{args.overlay}: cannot open the video")
    wanted, tiles, index = set(args.frames), {}, 0
    while len(tiles) < len(wanted):
        ok, frame = capture.read()
        if not ok:
            missing = sorted(wanted - set(tiles))
            raise SystemExit(f"{args.overlay}: has {index} frames, frames {missing} are missing")
        if index in wanted:
            if not (0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= frame.shape[1] and y + h <= frame.shape[0]):
                raise SystemExit(f"--crop {x} {y} {w} {h} does not fit the {frame.shape[1]} x {frame.shape[0]} frames")
            frame = cv2.resize(frame[y:y + h, x:x + w], (w * 3 // 2, h * 3 // 2), interpolation=cv2.INTER_CUBIC)
            cv2.putText(frame, f"frame {index}", (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 4, cv2.LINE_AA)
            cv2.putText(frame, f"frame {index}", (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2,
                        cv2.LINE_AA)
            tiles[index] = frame
        index += 1
    row = [tiles[i] for i in args.frames]
    sheet = np.vstack([np.hstack(row[:3]), np.hstack(row[3:])])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), sheet, [cv2.IMWRITE_JPEG_QUALITY, 85]):
        raise SystemExit(f"{args.out}: cannot write the image")
    print(f"wrote {args.out} ({sheet.shape[1]} x {sheet.shape[0]})")


if __name__ == "__main__":
    main()
