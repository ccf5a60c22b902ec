"""One process of a distributed-training test (see tests/test_distribute.py).

    python worker.py STRATEGY OUT.npz [--jit]

STRATEGY: ``single`` (the reference), ``mirrored`` (2 logical CPUs in this process)
or ``multi_worker`` (TF_CONFIG set by the test). Trains SFocusModel with
ResNet-8 for a few steps on a fixed global batch of 16 whose two halves are the
same 8 examples, so every replica's slice has the statistics of the whole batch
(BatchNorm then agrees exactly with one device), and saves the final weights
and the logs of every step.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("strategy", choices=["single", "mirrored", "multi_worker"])
    parser.add_argument("out")
    parser.add_argument("--jit", action="store_true")
    args = parser.parse_args()
    if args.strategy == "mirrored":
        cpu, = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from sfocus_tf.training.distribute import make_strategy
    strategy = make_strategy({"single": "auto"}.get(args.strategy, args.strategy))

    import keras
    import keras_models
    keras.config.disable_traceback_filtering()
    from sfocus_tf import SFocusModel

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    half = rng.normal(size=(8, 16, 16, 1)).astype("float32")
    half_labels = rng.integers(0, 4, 8).astype("int32")
    images, labels = np.concatenate([half, half]), np.concatenate([half_labels, half_labels])
    dataset = tf.data.Dataset.from_tensors((images, labels)).repeat()
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = dataset.with_options(options)
    with strategy.scope():
        model = SFocusModel(keras_models.get("resnet8", (16, 16, 1), 4), 4)
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), jit_compile=args.jit)
    history = model.fit(dataset, epochs=3, steps_per_epoch=1, verbose=0).history
    np.savez(args.out, replicas=strategy.num_replicas_in_sync,
             **{f"w{i}": w for i, w in enumerate(model.get_weights())},
             **{f"log_{k}": np.asarray(v) for k, v in history.items()})
    print("done", strategy.num_replicas_in_sync, file=sys.stderr)


if __name__ == "__main__":
    main()
