"""Any ``keras.applications`` model as a backbone, given two layer names.

Registered as ``application``::

    keras_models.get("application", (224, 224, 3), 1000, application="ResNet50",
                     inner_layer="conv4_block6_out", last_layer="conv5_block3_out")

The model is built with ``include_top=False`` and, where the constructor
allows it, ``include_preprocessing=False`` (inputs are already normalised).
Some applications (EfficientNet B0-B7) always carry their own rescaling and
normalisation layers; that is Keras' choice, not ours. Their BatchNorm
settings are Keras' too, not the 0.9 / 1e-5 of the other backbones.
"""

from __future__ import annotations

import inspect

import keras

from keras_models import keras_compat
from keras_models.backbone import Backbone
from keras_models.batch_norm import exact_batch_norm
from keras_models.blocks import kernel_regularizer, policy_name
from keras_models.registry import register

_KERNELS = ("kernel", "depthwise_kernel", "pointwise_kernel")


def application_names() -> list[str]:
    return sorted(n for n in dir(keras.applications)
                  if n[:1].isupper() and callable(getattr(keras.applications, n)))


def feature_map_layers(model) -> list[str]:
    """Names of the layers whose output is one 4-D feature map."""
    return [layer.name for layer in model.layers
            if not isinstance(layer, keras.layers.InputLayer)
            and isinstance(layer.output, keras.KerasTensor) and len(layer.output.shape) == 4]


def _build_application(application, input_shape, weights, dtype):
    if application not in application_names():
        raise ValueError(f"Unknown keras.applications model {application!r}; valid "
                         f"names: {', '.join(application_names())}")
    constructor = getattr(keras.applications, application)
    kwargs = {"include_top": False, "weights": weights, "input_shape": tuple(input_shape)}
    if "include_preprocessing" in inspect.signature(constructor).parameters:
        kwargs["include_preprocessing"] = False
    # The constructors take no dtype; the global policy is what their layers use.
    previous = keras.config.dtype_policy()
    try:
        if dtype is not None:
            keras.config.set_dtype_policy(dtype)
        return constructor(**kwargs)
    finally:
        keras.config.set_dtype_policy(previous)


def _feature_map(model, layer_name, role):
    valid = feature_map_layers(model)
    if layer_name not in valid:
        raise ValueError(f"{role}={layer_name!r} is not a 4-D feature-map layer of "
                         f"{model.name}; valid layer names: {', '.join(valid)}")
    return model.get_layer(layer_name).output


def _add_weight_decay(model, weight_decay):
    # The constructors take no regulariser, so set it on the variables; Keras
    # reads ``variable.regularizer`` when it collects ``model.losses``.
    regularizer = kernel_regularizer(weight_decay)
    if regularizer is None:
        return
    for layer in model.layers:
        for attr in _KERNELS:
            variable = getattr(layer, attr, None)
            if isinstance(variable, keras.Variable) and variable.trainable:
                variable.regularizer = regularizer


@keras.saving.register_keras_serializable(package="keras_models")
class ApplicationBackbone(Backbone):
    """A ``keras.applications`` model cut at two of its layers.

    Args:
        input_shape: ``(height, width, channels)``.
        num_classes: size of the head this backbone is meant for.
        application: a ``keras.applications`` name, e.g. ``"MobileNetV2"``.
        inner_layer: name of the layer giving ``F_in``.
        last_layer: name of the layer giving ``F_last``; None = the
            application's own output (its last feature map).
        weights: passed to the constructor (``"imagenet"`` needs the network
            or the Keras cache). ``get_config`` says None: a ``.keras`` file
            restores the weights itself.
        weight_decay: see ``blocks.kernel_regularizer``; on every conv / dense
            kernel, depthwise and pointwise ones included.
        dtype: policy to build with (set globally while building).
    """

    def __init__(self, input_shape, num_classes=None, application=None, inner_layer=None,
                 last_layer=None, weights=None, weight_decay=0.0, dtype=None, **kwargs):
        # Stock BatchNorm has inexact second derivatives (see batch_norm.py).
        app = exact_batch_norm(_build_application(application, input_shape, weights, dtype))
        inner = _feature_map(app, inner_layer, "inner_layer")
        if last_layer is None:
            last_layer = keras_compat.layer_of(app.output).name
        last = _feature_map(app, last_layer, "last_layer")
        _add_weight_decay(app, weight_decay)
        kwargs.setdefault("name", app.name)
        super().__init__(app.input, inner, last, num_classes=num_classes, **kwargs)
        self.application = application
        self.inner_layer = inner_layer
        self.last_layer = last_layer
        self.weight_decay = float(weight_decay)
        self._backbone_dtype = policy_name(dtype)

    def get_config(self):
        return {**super().get_config(), "input_shape": self.image_shape,
                "application": self.application, "inner_layer": self.inner_layer,
                "last_layer": self.last_layer, "weights": None,
                "weight_decay": self.weight_decay, "dtype": self._backbone_dtype}


@register("application")
def application(input_shape, num_classes=None, **kwargs):
    return ApplicationBackbone(input_shape, num_classes, **kwargs)
