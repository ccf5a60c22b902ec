"""The backbone contract: images -> {"inner": F_in, "last": F_last}."""

from __future__ import annotations

import keras

FEATURE_KEYS = ("inner", "last")


@keras.saving.register_keras_serializable(package="keras_models")
class Backbone(keras.Model):
    """A functional model whose outputs are the two SFOCUS feature maps.

    ``inner`` is ``F_in`` [B, h, w, k] (an inner stage) and ``last`` is
    ``F_last`` [B, H, W, K] (the last conv stage, which the classifier head
    pools). ``num_classes`` is the head size the backbone was made for; the
    head itself belongs to ``SFocusModel`` so that it is always GAP + dense.

    Subclasses build their graph from hyperparameters in ``__init__`` and
    return those hyperparameters from ``get_config`` (the keras-hub pattern),
    so a saved model is rebuilt from a few numbers, not from a layer graph.
    A plain ``Backbone(inputs, inner, last)`` wrapping a graph of the user's
    own has no such numbers: it serialises the graph itself.
    """

    def __init__(self, inputs, inner, last, num_classes=None, **kwargs):
        # The ResNets consume it; Keras would silently ignore it for the others.
        if kwargs.pop("class_block_width", None) is not None:
            raise ValueError(f"class_block_width (per-class last blocks) exists for the "
                             f"ResNets only, not for {type(self).__name__} "
                             f"{kwargs.get('name', '')!r}")
        super().__init__(inputs=inputs, outputs={"inner": inner, "last": last}, **kwargs)
        self.num_classes = num_classes

    @property
    def image_shape(self) -> tuple:
        """The input shape without the batch axis, e.g. ``(32, 32, 3)``."""
        return tuple(self.input_shape[1:])

    @property
    def feature_shapes(self) -> dict:
        return {key: tuple(self.output[key].shape[1:]) for key in FEATURE_KEYS}

    def get_config(self):
        # Subclasses extend this with their own hyperparameters.
        config = {"name": self.name, "trainable": self.trainable,
                  "num_classes": self.num_classes}
        if type(self) is Backbone:
            config["graph"] = keras.Model(self.input, self.output, name=self.name).get_config()
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "graph" in config:
            graph = keras.Model.from_config(config.pop("graph"))
            return cls(graph.input, graph.output["inner"], graph.output["last"], **config)
        return cls(**config)
