"""One tiny deterministic training run for tests/test_resume.py.

    python tests/resume/run.py DATA_DIR WORKDIR KILL_AT_STEP [mirrored]

Op determinism on; with KILL_AT_STEP > 0 the process SIGKILLs itself right after
that optimizer step (after any backup of that step). ``mirrored``: MirroredStrategy
on 2 logical CPUs. Prints one JSON line of the metrics.
"""

import hashlib
import json
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.experimental.enable_op_determinism()

from sfocus_tf.training import train  # noqa: E402
from sfocus_tf.training.checkpointing import BackupAndResume  # noqa: E402
from sfocus_tf.configs.train_config import TrainConfig  # noqa: E402

# 3 epochs of 5 steps, a backup every 2 steps and at each epoch end (steps 2, 4, 5,
# 7, 9, 10, 12, 14, 15): most kills fall between backups and inside an epoch.
CONFIG = dict(dataset="fashion_mnist", model="resnet8", batch_size=8, steps_per_epoch=5,
              epochs=3, eval_steps=1, attention_images=2, backup_every_steps=2,
              schedule="cosine", learning_rate=0.05)
TOTAL_STEPS = 15


class KilledAt(BackupAndResume):
    kill_at = 0

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        if int(self.model.optimizer.iterations.numpy()) == self.kill_at:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)


def main(data_dir, workdir, kill_at, strategy="auto"):
    if strategy == "mirrored":
        cpu, = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    KilledAt.kill_at = int(kill_at)
    train.BackupAndResume = KilledAt
    config = TrainConfig(data_dir=data_dir, strategy=strategy, **CONFIG)
    metrics = train.train_and_evaluate(config, workdir)
    model = keras.models.load_model(os.path.join(workdir, "model.keras"))
    # The trained variables alone: under MirroredStrategy each replica keeps its own
    # BatchNorm moving statistics, and a backup holds their mean.
    digest = hashlib.sha256()
    for weight in model.trainable_weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    metrics["trainable_checksum"] = digest.hexdigest()[:16]
    print("METRICS " + json.dumps(metrics, sort_keys=True))


if __name__ == "__main__":
    main(*sys.argv[1:])
