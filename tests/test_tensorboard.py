"""What a run writes to TensorBoard, read back from the event files: every term of the
loss, descriptions, one step axis, the learning rate per step, the overlays, HParams."""

import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorboard.plugins.hparams import metadata as hparams_metadata

from fake_data import write_fake_fashion
from sfocus_tf import SFocusConfig
from sfocus_tf.training import hparams, tensorboard_logs
from sfocus_tf.evaluation import overlays
from sfocus_tf.modeling import terms
from sfocus_tf.common.files import read_json
from sfocus_tf.studies.reproduction import write_hparams_config
from sfocus_tf.configs.train_config import TrainConfig
from sfocus_tf.training.build import learning_rate_schedule
from sfocus_tf.training.train import train_and_evaluate
from sfocus_tf.studies.tuning import SearchSpace

STEPS, EPOCHS, SIZE, SHOWN = 2, 2, 16, 2  # steps per epoch, epochs, image size, overlays
# The run below uses a plain backbone: no per-class blocks, so no ``bw``.
PLAIN_BACKBONE_TERMS = tuple(term for term in terms.TERMS if not term.class_blocks)


def events(folder) -> dict:
    """{tag: [(step, summary value), ...]} of the event files directly in ``folder``."""
    found = {}
    for name in sorted(os.listdir(folder)):
        if name.startswith("events.out.tfevents"):
            for event in tf.compat.v1.train.summary_iterator(os.path.join(folder, name)):
                for value in event.summary.value:
                    found.setdefault(value.tag, []).append((event.step, value))
    return found


def scalars(folder) -> dict:
    """{tag: {step: value}} of the scalar summaries in ``folder``."""
    return {tag: {step: float(tf.make_ndarray(value.tensor)) for step, value in points}
            for tag, points in events(folder).items()
            if points[0][1].metadata.plugin_data.plugin_name == "scalars"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny run (cosine schedule, weight decay in the loss): its folder, metrics, config."""
    root = tmp_path_factory.mktemp("tensorboard")
    config = TrainConfig(dataset="fashion_mnist", data_dir=write_fake_fashion(root, 16),
                         model="resnet8", image_size=SIZE, epochs=EPOCHS,
                         steps_per_epoch=STEPS, batch_size=4, eval_steps=1,
                         attention_images=SHOWN, schedule="cosine", weight_decay=1e-3)
    workdir = root / "run"
    metrics = train_and_evaluate(config, str(workdir))
    return workdir, metrics, config.resolve()


def test_epoch_scalars_are_the_history_at_the_step_that_ended_the_epoch(run):
    workdir, metrics, _ = run
    for folder, prefix in (("train", ""), ("validation", "val_")):
        logged = scalars(workdir / "tensorboard" / folder)
        assert not [tag for tag in logged if tag.startswith("evaluation_")]
        for epoch, logs in metrics["history"].items():
            step = (int(epoch) + 1) * STEPS
            for name, value in logs.items():
                if name.startswith(prefix) and not (prefix == "" and name.startswith("val_")):
                    tag = "epoch_" + name[len(prefix):]
                    assert logged[tag][step] == pytest.approx(value, rel=1e-6), tag
                    assert set(logged[tag]) == {STEPS * (e + 1) for e in range(EPOCHS)}


def test_logged_terms_add_up_to_the_loss(run):
    """Unit weights, no warm-up: loss = ce + as_last + as_inner + ac + l2, epoch means."""
    workdir, _, _ = run
    for folder in ("train", "validation"):
        logged = scalars(workdir / "tensorboard" / folder)
        parts = [f"epoch_{term.name}" for term in PLAIN_BACKBONE_TERMS] + ["epoch_l2"]
        assert logged["epoch_l2"][STEPS] > 0  # the weight decay is in the loss
        for step, loss in logged["epoch_loss"].items():
            assert loss == pytest.approx(sum(logged[tag][step] for tag in parts), rel=1e-5)


def test_every_scalar_carries_its_description(run):
    workdir, _, _ = run
    described = {}
    for folder in ("train", "validation", "test"):
        for tag, points in events(workdir / "tensorboard" / folder).items():
            described[(folder, tag)] = points[0][1].metadata.summary_description
    assert all(described.values()), [key for key, text in described.items() if not text]
    for term in PLAIN_BACKBONE_TERMS:  # the table's own words, in training and in the test results
        assert described[("train", f"epoch_{term.name}")] == term.description
        assert described[("test", f"test_{term.name}")].endswith(term.description)
    assert "L2" in described[("validation", "epoch_l2")]


def test_learning_rate_is_logged_before_every_step(run):
    """The value each step uses: the first point is the starting value and the last
    one is not the 0 a cosine schedule reaches after the last step."""
    workdir, _, config = run
    logged = scalars(workdir / "tensorboard" / "train")["learning_rate"]
    schedule = learning_rate_schedule(config, STEPS)
    steps = range(EPOCHS * STEPS)
    assert sorted(logged) == list(steps)
    np.testing.assert_allclose([logged[s] for s in steps],
                               [float(schedule(s)) for s in steps], rtol=1e-6)
    assert logged[0] == pytest.approx(config.learning_rate) and min(logged.values()) > 0
    assert "epoch_learning_rate" not in scalars(workdir / "tensorboard" / "train")


def test_final_test_metrics_equal_metrics_json(run):
    workdir, metrics, _ = run
    logged = scalars(workdir / "tensorboard" / "test")
    saved = read_json(str(workdir / "metrics.json"))
    charted = tensorboard_logs.final_metrics(saved)
    assert {"test_accuracy", "test_l2", "attention_overlap", "train_seconds"} <= set(charted)
    assert set(logged) == set(charted)
    for name, value in charted.items():
        assert logged[name] == {EPOCHS * STEPS: pytest.approx(value, rel=1e-6)}, name


def test_run_writes_its_resolved_config_as_hparams(run):
    workdir, _, config = run
    points = events(workdir / "tensorboard")[hparams_metadata.SESSION_START_INFO_TAG]
    info = hparams_metadata.parse_session_start_info_plugin_data(
        points[0][1].metadata.plugin_data.content)
    written = {name: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
               for name, value in info.hparams.items()}
    expected = hparams.config_hparams(config)
    assert written == pytest.approx(expected)
    assert written["w_ac"] == 1.0 and written["schedule"] == "cosine"
    assert written["jit_compile"] == "auto" and written["second_order"] is False  # default


def test_overlays_show_both_layers_on_the_step_axis(run):
    workdir, _, _ = run
    points = events(workdir / "tensorboard" / "attention")["true_vs_confusing"]
    assert [step for step, _ in points] == [STEPS * (e + 1) for e in range(EPOCHS)]
    assert "inner layer" in points[0][1].metadata.summary_description
    width, height, png = tf.make_ndarray(points[-1][1].tensor)
    on_disk = overlays.load_png(str(workdir / "attention" / f"epoch-{EPOCHS:03d}.png"))
    shown = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    np.testing.assert_array_equal(shown, on_disk)
    panel = SIZE * 4  # the grid's scale
    assert (int(width), int(height)) == (5 * panel, 14 + SHOWN * (panel + 14))
    assert on_disk.shape == (int(height), int(width), 3)


def test_an_all_zero_map_is_hatched_not_blank():
    images = np.zeros((2, 6, 6, 1), np.float32)  # black: only the maps and marks show
    maps = {"target_last": np.ones((2, 3, 3)), "confusing_inner": np.zeros((2, 3, 3))}
    maps["confusing_inner"][1, 1, 1] = 1.0  # the second example's map is not empty
    grid = overlays.overlay_grid(images, maps, target_names=["a", "b"],
                                 confusing_names=["c", "d"], scale=4)
    panel, caption = 24, 14
    assert grid.shape == (caption + 2 * (panel + caption), 3 * panel, 3)

    def hatch_pixels(row, column):
        top = caption + row * (panel + caption) + caption
        cell = grid[top:top + panel, column * panel:(column + 1) * panel]
        return int(np.all(cell == overlays._HATCH, axis=-1).sum())

    assert hatch_pixels(0, 2) > panel  # example 0: its confusing inner map is all zero
    assert hatch_pixels(1, 2) == 0 and hatch_pixels(0, 1) == 0


def experiment(folder):
    """The HParams experiment config in ``folder`` (one events file holds it)."""
    found = [name for name in os.listdir(folder) if name.startswith("events.out")]
    assert len(found) == 1, found
    points = events(folder)[hparams_metadata.EXPERIMENT_TAG]
    return hparams_metadata.parse_experiment_plugin_data(points[0][1].metadata.plugin_data.content)


def test_study_writes_one_hparams_table_over_its_runs(tmp_path):
    base = TrainConfig(dataset="fashion_mnist", epochs=1, steps_per_epoch=2)
    configs = [base.replace(seed=seed, sfocus=sfocus).resolve()
               for seed in (0, 1) for sfocus in (SFocusConfig().baseline(), SFocusConfig())]
    write_hparams_config(str(tmp_path), configs, has_boxes=False)
    write_hparams_config(str(tmp_path), configs, has_boxes=False)  # a resumed study
    config = experiment(tmp_path)
    columns = {info.name: info for info in config.hparam_infos}
    assert set(columns) == {"seed", "w_as_last", "w_as_in", "w_ac"}
    assert [v.number_value for v in columns["seed"].domain_discrete.values] == [0, 1]
    assert "Random seed" in columns["seed"].description
    results = {info.name.tag: info.name.group for info in config.metric_infos}
    assert results["test_accuracy"] == "test" and "pointing_game" not in results


def test_search_writes_one_hparams_table_over_its_trials(tmp_path):
    from sfocus_tf.studies.tuning import write_hparams_config as write_search_config
    space = SearchSpace.parse("lr=0.01:0.1,sigma=fixed").for_config(TrainConfig())
    write_search_config(str(tmp_path), space, "val_accuracy")
    config = experiment(tmp_path)
    columns = {info.name: info.domain_interval for info in config.hparam_infos}
    assert set(columns) == {"w_as_last", "w_as_in", "w_ac", "theta", "lr"}
    assert (columns["lr"].min_value, columns["lr"].max_value) == (0.01, 0.1)
    results = {(info.name.group, info.name.tag) for info in config.metric_infos}
    assert ("validation", "epoch_accuracy") in results and ("train", "epoch_loss") in results
