"""One process of the distributed-evaluation test (see tests/test_distribute.py).

    python evaluation_worker.py STRATEGY OUT.npz

STRATEGY: ``mirrored`` (2 logical CPUs in this process) or ``multi_worker``
(TF_CONFIG set by the test). Trains a tiny SFocusModel for a few steps on a global
batch whose two halves have different statistics, so each replica's BatchNorm
sees different data, then evaluates under the strategy and, on one device, the
model saved (beside OUT.npz) and loaded back.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def batch_with_different_halves():
    """16 images: the first 8 ~ N(0, 1), the last 8 ~ N(3, 2^2)."""
    rng = np.random.default_rng(0)
    images = rng.normal(size=(16, 12, 12, 3)).astype("float32")
    images[8:] = 3 + 2 * images[8:]
    return images, rng.integers(0, 3, 16).astype("int32")


def one_batch(images, labels):
    dataset = tf.data.Dataset.from_tensors((images, labels))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def replica_statistics(model, strategy):
    """Every BatchNorm moving statistic as this process's replicas hold it: [R, ...]."""
    return {f"local_{variable.path}": np.stack(
                [v.numpy() for v in strategy.experimental_local_results(variable.value)])
            for variable in model.non_trainable_variables if "moving" in variable.path}


def prefixed(prefix, logs):
    return {prefix + name: value for name, value in logs.items()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("strategy", choices=["mirrored", "multi_worker"])
    parser.add_argument("out")
    args = parser.parse_args()
    if args.strategy == "mirrored":
        cpu, = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from sfocus_tf.training.distribute import make_strategy
    strategy = make_strategy(args.strategy)

    import keras
    from sfocus_tf import SFocusModel
    from tiny import tiny_backbone

    keras.config.disable_traceback_filtering()
    keras.utils.set_random_seed(0)
    images, labels = batch_with_different_halves()
    data = one_batch(images, labels)
    with strategy.scope():
        model = SFocusModel(tiny_backbone(num_classes=3), 3)
        model.compile(optimizer=keras.optimizers.SGD(0.05))
    history = model.fit(data.repeat(), epochs=2, steps_per_epoch=2, validation_data=data,
                        verbose=0).history
    result = dict(replica_statistics(model, strategy),
                  replicas=strategy.num_replicas_in_sync,
                  predict=model.predict(data.map(lambda x, y: x), verbose=0),
                  **{f"validation_{name[4:]}": values[-1] for name, values in history.items()
                     if name.startswith("val_")},
                  **prefixed("evaluate_", model.evaluate(data, verbose=0, return_dict=True)))
    saved = os.path.splitext(args.out)[0] + ".keras"
    model.save(saved)
    with tf.device("/cpu:0"):
        loaded = keras.models.load_model(saved)
        result.update(prefixed("saved_evaluate_", loaded.evaluate(
            images, labels, batch_size=16, verbose=0, return_dict=True)))
        result["saved_predict"] = loaded.predict(images, batch_size=16, verbose=0)
    result.update({f"saved_{v.path}": v.numpy() for v in loaded.non_trainable_variables
                   if "moving" in v.path})
    np.savez(args.out, **result)


if __name__ == "__main__":
    main()
