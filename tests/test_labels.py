"""Labels outside [0, num_classes) or multi-hot vectors of the wrong width: one clear
line naming the value and the valid range, from fit, eager calls and the CLI alike."""

import sys

import numpy as np
import pytest
import tensorflow as tf

from sfocus_tf import SFocusConfig, SFocusModel, cli
from sfocus_tf.modeling.input_checks import check_labels, failed_check
from tiny import tiny_backbone

IMAGES = np.zeros((4, 12, 12, 3), np.float32)


def tiny_model(multi_label=False):
    model = SFocusModel(tiny_backbone((12, 12, 3), 4), 4, SFocusConfig(multi_label=multi_label))
    model.compile("sgd", jit_compile=False)
    return model


def fit_error(model, dataset) -> str:
    with pytest.raises(tf.errors.InvalidArgumentError) as failure:
        model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    return failed_check(failure.value)


def test_fit_names_the_label_out_of_range_and_the_valid_range():
    labels = np.array([0, 7, 2, -1], np.int32)
    message = fit_error(tiny_model(), tf.data.Dataset.from_tensors((IMAGES, labels)))
    assert message == "labels out of range [0, 3] (num_classes=4): got 7 -1"
    with pytest.raises(ValueError, match=r"^labels out of range \[0, 3\] \(num_classes=4\): got 4$"):
        check_labels([1, 4], 4, multi_label=False)  # eager: a ValueError at once
    assert check_labels([0, 3], 4, multi_label=False).numpy().tolist() == [0, 3]


def test_multi_hot_labels_of_the_wrong_width_or_values():
    wide = tf.data.Dataset.from_tensors((IMAGES, np.ones((4, 5), np.float32))).map(
        lambda images, labels: (images, tf.compat.v1.placeholder_with_default(
            labels, [None, None])))  # a width known only at run time
    assert wide.element_spec[1].shape.as_list() == [None, None]
    assert fit_error(tiny_model(True), wide) == (
        "multi-label labels must be multi-hot vectors of width 4 (num_classes): got width 5")
    half = np.zeros((4, 4), np.float32)
    half[2, 1] = 0.5
    assert fit_error(tiny_model(True), tf.data.Dataset.from_tensors((IMAGES, half))) == \
        "multi-label labels must be 0 or 1: got 0.5"
    with pytest.raises(ValueError, match="multi-hot"):
        check_labels(np.ones((4, 5)), 4, multi_label=True)  # a static width: at once


def run_command(body, monkeypatch) -> SystemExit:
    monkeypatch.setattr(sys, "argv", ["sfocus-test"])
    with pytest.raises(SystemExit) as exit_:
        cli.entry_point("sfocus-test", body)()
    return exit_.value


def test_the_cli_prints_one_line_for_a_bad_label(monkeypatch):
    model = tiny_model()
    bad = tf.data.Dataset.from_tensors((IMAGES, np.array([0, 1, 12, 3], np.int32)))
    exit_ = run_command(lambda: model.fit(bad, epochs=1, verbose=0, shuffle=False), monkeypatch)
    assert exit_.code == "sfocus-test: error: labels out of range [0, 3] (num_classes=4): got 12"

    def other_error():  # not one of our checks: the traceback stays
        raise tf.errors.InvalidArgumentError(None, None, "something else")
    monkeypatch.setattr(sys, "argv", ["sfocus-test"])
    with pytest.raises(tf.errors.InvalidArgumentError, match="something else"):
        cli.entry_point("sfocus-test", other_error)()
