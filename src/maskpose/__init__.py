"""maskpose: 3D human pose and mesh from one RGB image, self-adapted to new domains with masks.

Architecture (data flows one way)::

    data -> models -> body -> render -> topology / masks (losses) -> eval (metrics)

``train`` joins them into runs; ``cli`` maps command-line flags onto configs.
"""

__version__ = "0.1.0"
