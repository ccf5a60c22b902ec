"""A training run: train_and_evaluate, backups and resume, tf.distribute, the non-finite stop, TensorBoard and HParams."""
