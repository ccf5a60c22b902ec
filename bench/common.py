"""Pieces the scripts in bench/ share: the compared models and the step timer.

bench/ is not a package: each script runs as ``python bench/<name>.py``, which puts
bench/ on ``sys.path``, so ``import common`` finds this file. It defines no flags.
"""

from __future__ import annotations

import time

import keras

from sfocus_tf import SFocusConfig, SFocusModel

# The SFOCUS variants compared with a plain Keras step.
VARIANTS = {
    "sfocus_second_order": SFocusConfig(second_order=True),
    "sfocus_first_order": SFocusConfig(second_order=False),
    "sfocus_baseline": SFocusConfig().baseline(),
}


def parse_shape(text):
    """``"32x32x3"`` -> ``(32, 32, 3)``."""
    return tuple(int(v) for v in text.split("x"))


def sgd():
    return keras.optimizers.SGD(0.01, momentum=0.9)


def plain_model(backbone, num_classes, jit="auto", optimizer=None):
    """A functional Keras model with the backbone and SFOCUS' head (GAP + dense)."""
    pool = keras.layers.GlobalAveragePooling2D()(backbone.output["last"])
    model = keras.Model(backbone.input, keras.layers.Dense(num_classes)(pool))
    model.compile(optimizer=optimizer or sgd(),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=jit)
    return model


def sfocus_model(backbone, num_classes, config, jit="auto", optimizer=None):
    model = SFocusModel(backbone, num_classes, config)
    model.compile(optimizer=optimizer or sgd(), jit_compile=jit)
    return model


class StepTimer(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def time_steps(model, dataset, steps):
    """Seconds of each of ``steps`` training steps of ``model.fit`` on ``dataset``."""
    timer = StepTimer()
    timer.times = []
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[timer],
              shuffle=False)  # a dataset; Keras would only warn that it cannot shuffle
    return timer.times
