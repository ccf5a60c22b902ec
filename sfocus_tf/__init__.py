"""sfocus_tf: Sharpen Focus (SFOCUS, ICCV 2019) for Keras 3 on TensorFlow."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# TF's C++ INFO lines (CPU features, CUDA probing) drown our output; warnings stay.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from sfocus_tf.common.quiet_start import filtered_stderr  # noqa: E402

with filtered_stderr():  # TensorFlow's start-up lines about oneDNN and absent drivers
    import keras  # noqa: E402
    import tensorflow as _tf  # noqa: E402

from sfocus_tf.common import versions  # noqa: E402

versions.check("keras", keras.__version__)  # first: another Keras may fail below

if keras.backend.backend() != "tensorflow":
    raise ImportError("sfocus_tf needs the TensorFlow backend of Keras "
                      f"(KERAS_BACKEND=tensorflow); got {keras.backend.backend()!r}")

versions.check("tensorflow", _tf.__version__)

from sfocus_tf.modeling import losses  # noqa: E402
from sfocus_tf.modeling.gradcam import attention_maps  # noqa: E402
from sfocus_tf.modeling.sfocus_config import SFocusConfig  # noqa: E402
from sfocus_tf.modeling.sfocus_model import SFocusModel  # noqa: E402

__all__ = ["SFocusConfig", "SFocusModel", "attention_maps", "losses"]
__version__ = "0.1.0"
