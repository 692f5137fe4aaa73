"""Body models by name: :data:`BODY_MODELS` and :func:`make_body` (docs/design.md §2)."""

from __future__ import annotations

import inspect

from maskpose.body.anny_body import AnnyBody
from maskpose.body.interface import BODY_MODELS, BodyModel
from maskpose.body.smpl_body import SMPLBody
from maskpose.errors import ConfigError

_CLASSES = {"anny": AnnyBody, "smpl": SMPLBody}


def make_body(name: str, **kwargs) -> BodyModel:
    """Build the body model called ``name`` (one of :data:`BODY_MODELS`) with its own keyword
    arguments: ``AnnyBody(topology=..., device=...)``, ``SMPLBody(model_path=..., h36m_regressor=...,
    topology=..., device=...)``. ``ConfigError`` for an unknown name, and for ``"smpl"`` without the
    ``smpl`` extra or a model file."""
    if name not in _CLASSES:
        raise ConfigError(f"unknown body model {name!r}; known: {', '.join(BODY_MODELS)}")
    cls = _CLASSES[name]
    try:
        inspect.signature(cls).bind(**kwargs)
    except TypeError as err:  # a keyword the model does not take
        raise ConfigError(f"body model {name!r}: {err}") from None
    return cls(**kwargs)


__all__ = ["BODY_MODELS", "BodyModel", "make_body"]
