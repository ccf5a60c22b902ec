"""A small name -> builder registry for backbones."""

from __future__ import annotations

from typing import Callable

_BUILDERS: dict[str, Callable] = {}


def register(name: str):
    """Decorator: ``@register("resnet20")`` on a builder
    ``fn(input_shape, num_classes=None, **kwargs) -> Backbone``."""
    def wrap(builder):
        if name in _BUILDERS:
            raise ValueError(f"Backbone {name!r} is already registered")
        _BUILDERS[name] = builder
        return builder
    return wrap


def names() -> list[str]:
    return sorted(_BUILDERS)


def get(name: str, input_shape, num_classes=None, **kwargs):
    """Build the backbone registered as ``name`` for images of ``input_shape``
    (without the batch axis, e.g. ``(32, 32, 3)``)."""
    if name not in _BUILDERS:
        raise ValueError(f"Unknown backbone {name!r}; valid names: {', '.join(names())}")
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels); got {input_shape}")
    return _BUILDERS[name](input_shape=input_shape, num_classes=num_classes, **kwargs)
