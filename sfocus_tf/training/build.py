"""The run's model and optimizer: backbone + SFocusModel under the dtype policy, the
learning-rate schedule, the optimizer."""

from __future__ import annotations

import contextlib

import keras

import keras_models
from sfocus_tf.configs.train_config import TrainConfig
from sfocus_tf.modeling.sfocus_model import SFocusModel


def learning_rate_schedule(config: TrainConfig, steps_per_epoch: int):
    total = config.epochs * steps_per_epoch
    warmup = int(config.warmup_epochs * steps_per_epoch)
    if config.schedule == "cosine":
        if warmup:
            return keras.optimizers.schedules.CosineDecay(
                0.0, max(total - warmup, 1), warmup_target=config.learning_rate,
                warmup_steps=warmup)
        return keras.optimizers.schedules.CosineDecay(config.learning_rate, total)
    if config.schedule == "multistep" and config.milestones:
        boundaries = [m * steps_per_epoch for m in config.milestones]
        values = [config.learning_rate * 0.1 ** i for i in range(len(boundaries) + 1)]
        return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    return config.learning_rate


def make_optimizer(config: TrainConfig, steps_per_epoch: int):
    """SGD and Adam take weight decay as L2 terms in the loss (``model.losses``);
    AdamW applies its own decoupled decay."""
    lr = learning_rate_schedule(config, steps_per_epoch)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=config.momentum, nesterov=True)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(lr)
    return keras.optimizers.AdamW(lr, weight_decay=config.weight_decay)


def build_model(config: TrainConfig, preset) -> SFocusModel:
    loss_decay = 0.0 if config.optimizer == "adamw" else config.weight_decay
    backbone = keras_models.get(config.model, preset.image_size, preset.num_classes,
                                weight_decay=loss_decay, **config.backbone_options())
    return SFocusModel(backbone, preset.num_classes, config.sfocus, weight_decay=loss_decay)


def compiled_model(config: TrainConfig, preset, steps_per_epoch: int) -> SFocusModel:
    """``build_model`` + ``compile`` under the config's dtype policy (mixed precision
    is set per layer at construction). Call it inside the strategy's scope."""
    with dtype_policy(config.mixed_precision):
        model = build_model(config, preset)
        model.compile(optimizer=make_optimizer(config, steps_per_epoch),
                      jit_compile=config.jit_compile)
        # Built now, in the strategy's scope, so fit need not build it from an extra
        # pass over the training data (SFocusModel._maybe_symbolic_build).
        model.optimizer.build(model.trainable_variables)
    return model


@contextlib.contextmanager
def dtype_policy(name: str):
    """Sets the global Keras dtype policy for the run, and restores it."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32" if name == "none" else name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
