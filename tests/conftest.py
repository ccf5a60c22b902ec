import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(__file__))  # for tests/tiny.py

import sfocus_tf  # noqa: E402,F401  (first: it keeps TensorFlow's start-up lines off stderr)
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from sfocus_tf.data import presets  # noqa: E402


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def preset_lookups(monkeypatch):
    """The dataset names looked up (``data.presets.PRESETS[name]``) during the test."""
    looked_up = []

    class CountingPresets(dict):
        def __getitem__(self, name):
            looked_up.append(name)
            return super().__getitem__(name)

    monkeypatch.setattr(presets, "PRESETS", CountingPresets(presets.PRESETS))
    return looked_up


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    keras.utils.set_random_seed(1)
    yield
    keras.config.set_floatx("float32")
    keras.backend.clear_session()
