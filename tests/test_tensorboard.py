"""What a run writes to TensorBoard, read back from the event files: the tag groups,
every term of the loss, descriptions, one step axis, the learning rate per step, the
overlays, the HParams trial and its table."""

import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorboard.plugins.hparams import metadata as hparams_metadata

from fake_data import write_fake_fashion
from sfocus_tf import SFocusConfig
from sfocus_tf.training import hparams, tensorboard_logs, tensorboard_tags
from sfocus_tf.training.tensorboard_tags import tag
from sfocus_tf.evaluation import overlays
from sfocus_tf.modeling import terms
from sfocus_tf.common.files import read_json
from sfocus_tf.studies.reproduction import write_hparams_config
from sfocus_tf.configs.train_config import TrainConfig
from sfocus_tf.training.build import learning_rate_schedule
from sfocus_tf.training.train import train_and_evaluate
from sfocus_tf.studies.tuning import SearchSpace

STEPS, EPOCHS, SIZE, SHOWN = 2, 2, 16, 5  # steps per epoch, epochs, image size, overlays
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


def folder(workdir, run=""):
    """A run folder of the run's TensorBoard trial (``tensorboard/trial/<run>``)."""
    return workdir / "tensorboard" / "trial" / run


def test_tags_form_groups_whose_first_two_are_accuracy_and_loss(run):
    """Time Series shows a section per group in ASCII order, and opens the first two."""
    workdir, _, _ = run
    tags = {name: set(scalars(folder(workdir, name))) for name in ("train", "validation", "test")}
    groups = {tag_.split("/")[0] for found in tags.values() for tag_ in found}
    assert groups == {"accuracy", "loss", "maps", "maps_coverage", "optimizer", "run"}
    assert sorted(groups)[:2] == ["accuracy", "loss"]
    assert sorted(tags["train"] & {"loss/loss", "loss/terms/ce"}) == ["loss/loss", "loss/terms/ce"]
    # the objective first in its group, then its terms
    assert sorted(t for t in tags["train"] if t.startswith("loss/"))[0] == "loss/loss"
    # the test figures are the last points of the charts train and validation draw
    assert {"accuracy/accuracy", "loss/loss", "loss/terms/as_last"} <= \
        tags["test"] & tags["train"] & tags["validation"]
    assert {"run/train_seconds", "run/examples"} <= tags["test"]


def test_epoch_scalars_are_the_history_at_the_step_that_ended_the_epoch(run):
    workdir, metrics, _ = run
    for name, prefix in (("train", ""), ("validation", "val_")):
        logged = scalars(folder(workdir, name))
        for epoch, logs in metrics["history"].items():
            step = (int(epoch) + 1) * STEPS
            for key, value in logs.items():
                if key.startswith(prefix) and not (prefix == "" and key.startswith("val_")):
                    shown = tag(key[len(prefix):])
                    assert logged[shown][step] == pytest.approx(value, rel=1e-6), shown
                    assert set(logged[shown]) == {STEPS * (e + 1) for e in range(EPOCHS)}


def test_logged_terms_add_up_to_the_loss(run):
    """Unit weights, no warm-up: loss = ce + as_last + as_inner + ac + l2, epoch means."""
    workdir, _, _ = run
    for name in ("train", "validation"):
        logged = scalars(folder(workdir, name))
        parts = [f"loss/terms/{term.name}" for term in PLAIN_BACKBONE_TERMS] + ["loss/terms/l2"]
        assert logged["loss/terms/l2"][STEPS] > 0  # the weight decay is in the loss
        for step, loss in logged["loss/loss"].items():
            assert loss == pytest.approx(sum(logged[tag_][step] for tag_ in parts), rel=1e-5)


def test_every_scalar_carries_its_description(run):
    workdir, _, _ = run
    described = {}
    for name in ("train", "validation", "test"):
        for tag_, points in events(folder(workdir, name)).items():
            described[(name, tag_)] = points[0][1].metadata.summary_description
    assert all(described.values()), [key for key, text in described.items() if not text]
    for term in PLAIN_BACKBONE_TERMS:  # the table's own words, in training and in the test results
        assert described[("train", tag(term.name))] == term.description
        assert described[("test", tag(term.name))] == "test set: " + term.description
    assert "L2" in described[("validation", "loss/terms/l2")]
    assert described[("validation", "maps/attention_overlap")].startswith("validation images")
    assert described[("validation", "run/examples")] == "validation images: examples evaluated"


def test_learning_rate_is_logged_before_every_step(run):
    """The value each step uses: the first point is the starting value and the last
    one is not the 0 a cosine schedule reaches after the last step."""
    workdir, _, config = run
    logged = scalars(folder(workdir, "train"))["optimizer/learning_rate"]
    schedule = learning_rate_schedule(config, STEPS)
    steps = range(EPOCHS * STEPS)
    assert sorted(logged) == list(steps)
    np.testing.assert_allclose([logged[s] for s in steps],
                               [float(schedule(s)) for s in steps], rtol=1e-6)
    assert logged[0] == pytest.approx(config.learning_rate) and min(logged.values()) > 0


def test_final_figures_equal_metrics_json_at_the_last_step(run):
    """Each number in its split's folder; the final validation loss and accuracy are
    the last epoch's points (the same images), not written twice."""
    workdir, metrics, _ = run
    saved = read_json(str(workdir / "metrics.json"))
    charted = tensorboard_logs.final_metrics(saved)
    assert {"test_accuracy", "test_l2", "attention_overlap", "train_seconds",
            "validation_attention_overlap", "validation_accuracy"} <= set(charted)
    last = EPOCHS * STEPS
    logged = {name: scalars(folder(workdir, name)) for name in ("validation", "test")}
    for key, value in charted.items():
        name, shown = tensorboard_tags.final_place(key)
        assert logged[name][shown][last] == pytest.approx(value, rel=1e-6), key
    assert set(logged["test"]) == {tensorboard_tags.final_place(key)[1] for key in charted
                                   if tensorboard_tags.final_place(key)[0] == "test"}
    assert set(logged["validation"]["accuracy/accuracy"]) == {STEPS, last}  # one point each


_PARSERS = {hparams_metadata.SESSION_START_INFO_TAG:
            hparams_metadata.parse_session_start_info_plugin_data,
            hparams_metadata.SESSION_END_INFO_TAG:
            hparams_metadata.parse_session_end_info_plugin_data,
            hparams_metadata.EXPERIMENT_TAG: hparams_metadata.parse_experiment_plugin_data}


def hparams_summaries(path) -> dict:
    """{HParams tag: [its parsed summaries]} of the event files directly in ``path``."""
    return {tag_: [_PARSERS[tag_](value.metadata.plugin_data.content) for _, value in points]
            for tag_, points in events(path).items() if tag_ in _PARSERS}


def test_run_is_a_named_trial_that_ended_with_success(run):
    workdir, _, config = run
    found = hparams_summaries(folder(workdir))
    [start], [end] = (found[hparams_metadata.SESSION_START_INFO_TAG],
                      found[hparams_metadata.SESSION_END_INFO_TAG])
    assert start.group_name == str(workdir)  # the run directory, not a hash
    written = {name: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
               for name, value in start.hparams.items()}
    expected = {**hparams.config_hparams(config), **hparams.summary_hparams(config)}
    assert written == pytest.approx(expected)
    assert written["w_ac"] == 1.0 and written["schedule"] == "cosine"
    assert written["jit_compile"] == "auto" and written["second_order"] is False  # default
    assert written["epochs"] == str(EPOCHS) and written["batch_size"] == "4"  # not 2.0000
    assert written["loss_weights"] == "1/1/1 (as_last/as_in/ac)"
    assert end.status == hparams.SUCCESS and end.end_time_secs > start.start_time_secs


def test_run_writes_its_own_table_whose_metrics_are_its_charts(run):
    """Both ``--logdir <run>`` and ``--logdir <run>/tensorboard`` find the table and
    link each metric to a chart below the trial's folder."""
    workdir, _, _ = run
    [table] = hparams_summaries(folder(workdir))[hparams_metadata.EXPERIMENT_TAG]
    shown = sorted(info.name for info in table.hparam_infos if info.differs)
    assert shown == sorted(hparams.SHOWN) and len(shown) == 5  # TensorBoard shows five
    assert all(info.description for info in table.hparam_infos)
    results = [(info.name.group, info.name.tag) for info in table.metric_infos]
    assert [info.display_name for info in table.metric_infos[:5]] == \
        list(hparams.MAIN_RESULTS.values())
    assert results[:3] == [("test", "accuracy/accuracy"), ("test", "maps/attention_overlap"),
                           ("test", "maps/attention_consistency")]
    assert all(info.description for info in table.metric_infos)
    for name, shown_tag in results:
        assert shown_tag in scalars(folder(workdir, name)), (name, shown_tag)


def test_a_failed_run_ends_its_trial_with_failure(tmp_path):
    config = TrainConfig(dataset="fashion_mnist", epochs=1, steps_per_epoch=1).resolve()
    with pytest.raises(RuntimeError):
        with hparams.Trial(str(tmp_path), config, name="runs/broken") as trial:
            trial.results = {"test_accuracy": 0.5}
            raise RuntimeError("stopped")
    found = hparams_summaries(tmp_path)
    assert [end.status for end in found[hparams_metadata.SESSION_END_INFO_TAG]] == [hparams.FAILURE]
    assert found[hparams_metadata.SESSION_START_INFO_TAG][0].group_name == "runs/broken"
    assert hparams_metadata.EXPERIMENT_TAG not in found  # no table for a failed run
    with hparams.Trial(str(tmp_path), config, name="runs/broken"):
        pass  # the restart replaces the failed session
    found = hparams_summaries(tmp_path)
    assert [end.status for end in found[hparams_metadata.SESSION_END_INFO_TAG]] == [hparams.SUCCESS]
    assert len(found[hparams_metadata.SESSION_START_INFO_TAG]) == 1


def test_overlays_are_pages_of_few_rows_on_the_step_axis(run):
    workdir, _, _ = run
    logged = events(folder(workdir, "attention"))
    assert sorted(logged) == ["overlays/examples_1-4", "overlays/examples_5-5"]
    pages = {}
    for name, points in logged.items():
        assert [step for step, _ in points] == [STEPS * (e + 1) for e in range(EPOCHS)]
        assert "inner layer" in points[0][1].metadata.summary_description
        width, height, png = tf.make_ndarray(points[-1][1].tensor)
        pages[name] = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        assert pages[name].shape == (int(height), int(width), 3)
    on_disk = overlays.load_png(str(workdir / "attention" / f"epoch-{EPOCHS:03d}.png"))
    first, last = pages["overlays/examples_1-4"], pages["overlays/examples_5-5"]
    assert first.shape[1] == last.shape[1] == on_disk.shape[1] == 5 * overlays.PANEL_WIDTH
    row = (on_disk.shape[0] - last.shape[0]) // 4  # the full picture: 4 more rows
    assert first.shape[0] == last.shape[0] + 3 * row
    top, bottom = 40, 60  # every page: the column titles above, the colour scale below
    np.testing.assert_array_equal(first[:top], on_disk[:top])
    np.testing.assert_array_equal(last[:top], on_disk[:top])
    np.testing.assert_array_equal(last[-bottom:], on_disk[-bottom:])
    final = overlays.load_png(str(workdir / "attention" / "final.png"))
    assert final.shape == on_disk.shape


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
    assert all(info.differs for info in columns.values())  # the columns shown first
    assert [v.string_value for v in columns["seed"].domain_discrete.values] == ["0", "1"]
    assert "Random seed" in columns["seed"].description
    results = {(info.name.group, info.name.tag) for info in config.metric_infos}
    assert {("test", "accuracy/accuracy"), ("validation", "accuracy/accuracy"),
            ("validation", "maps/attention_overlap")} <= results
    assert ("test", "maps/pointing_game") not in results


def test_search_writes_one_hparams_table_over_its_trials(tmp_path):
    from sfocus_tf.studies.tuning import write_hparams_config as write_search_config
    space = SearchSpace.parse("lr=0.01:0.1,sigma=fixed").for_config(TrainConfig())
    write_search_config(str(tmp_path), space, "val_accuracy")
    config = experiment(tmp_path)
    columns = {info.name: info.domain_interval for info in config.hparam_infos}
    assert set(columns) == {"w_as_last", "w_as_in", "w_ac", "theta", "lr"}
    assert (columns["lr"].min_value, columns["lr"].max_value) == (0.01, 0.1)
    results = {(info.name.group, info.name.tag) for info in config.metric_infos}
    assert ("validation", "accuracy/accuracy") in results and ("train", "loss/loss") in results
