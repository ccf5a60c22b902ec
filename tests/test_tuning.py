import json
import os
import subprocess
import sys

import keras_tuner as kt
import pytest
import tensorflow as tf

from fake_data import write_fake_fashion
from sfocus_tf import SFocusConfig
from sfocus_tf.configs.train_config import TrainConfig
from sfocus_tf.studies.tuning import SFocusHyperModel, SearchSpace, apply_values, search

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def base_config(tmp_path):
    return TrainConfig(dataset="fashion_mnist", data_dir=write_fake_fashion(tmp_path, 32),
                       model="resnet8", epochs=1, steps_per_epoch=2, eval_steps=1,
                       batch_size=8)


def test_search_space_parsing():
    space = dict(SearchSpace.parse("w_ac=0:0.5,lr=0.01:0.1:log,theta=fixed").ranges)
    assert (space["w_ac"].low, space["w_ac"].high, space["w_ac"].log) == (0.0, 0.5, False)
    assert space["lr"].log and "theta" not in space and "sigma" in space
    for bad in ("gamma=0:1", "w_ac=1:0", "lr=0:1:log", "w_ac=0:1:exp"):
        with pytest.raises(ValueError):
            SearchSpace.parse(bad)


def test_apply_values():
    config = apply_values(TrainConfig(), {"w_ac": 0.25, "sigma": 0.4, "lr": 0.02})
    assert config.sfocus == SFocusConfig(w_ac=0.25, sigma=0.4) and config.learning_rate == 0.02


def test_trials_build_the_model_that_sfocus_train_would(tmp_path):
    config = base_config(tmp_path).replace(mixed_precision="mixed_bfloat16").resolve()
    model = SFocusHyperModel(config, SearchSpace(), 2).build(kt.HyperParameters())
    assert model.dtype_policy.name == "mixed_bfloat16"
    assert model.backbone.dtype_policy.name == "mixed_bfloat16"
    with pytest.raises(ValueError, match="multi_worker"):
        search(config.replace(strategy="multi_worker"), str(tmp_path / "mw"))


def hparams_in(folder) -> dict:
    """{name: value} of the HParams session-start summary in ``folder``'s event files."""
    from tensorboard.plugins.hparams import metadata
    values = {}
    for name in (n for n in os.listdir(folder) if n.startswith("events.out.tfevents")):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(folder, name)):
            for value in event.summary.value:
                if value.tag == metadata.SESSION_START_INFO_TAG:
                    info = metadata.parse_session_start_info_plugin_data(
                        value.metadata.plugin_data.content)
                    values.update({k: v.number_value for k, v in info.hparams.items()})
    return values


def test_tiny_search_completes_and_its_flagfile_trains(tmp_path, capfd, preset_lookups):
    workdir = tmp_path / "tune"
    results = search(base_config(tmp_path), str(workdir), SearchSpace.parse("lr=0.01:0.1"),
                     tuner="random", max_trials=2)
    assert preset_lookups == ["fashion_mnist"]  # once per search, passed to every trial
    assert results.ok and len(results.rows) == 2
    shown = capfd.readouterr().out  # Keras Tuner's own progress and results
    assert "Trial 2 Complete" in shown and "Best val_accuracy So Far" in shown
    assert "2/2 - " in shown and "val_accuracy: " in shown  # the epochs, as fit shows them
    logged = sorted(os.listdir(workdir / "tensorboard"))
    tables = [name for name in logged if name.startswith("events.out.tfevents")]
    assert len(tables) == 1  # the search's HParams table config, beside its trials
    assert sorted(set(logged) - set(tables)) == sorted(row["trial"] for row in results.rows)
    for row in results.rows:  # each trial's folder holds its hyperparameters
        folder = workdir / "tensorboard" / row["trial"] / "execution0"
        assert hparams_in(folder) == pytest.approx(row["values"])
        assert {"train", "validation"} <= set(os.listdir(folder))
    assert all(row["status"] == "COMPLETED" and row["score"] is not None for row in results.rows)
    table = (workdir / "results.md").read_text()
    assert table.count("COMPLETED") == 2 and "val_accuracy" in table
    saved = json.loads((workdir / "results.json").read_text())
    assert saved["best"]["score"] == max(row["score"] for row in results.rows)
    flags = (workdir / "best.flags").read_text()
    assert f"--w_ac={results.best_values['w_ac']!r}" in flags
    trained = subprocess.run(
        [sys.executable, "-m", "sfocus_tf.cli.train", f"--flagfile={workdir / 'best.flags'}",
         f"--workdir={tmp_path / 'best'}"], cwd=ROOT, capture_output=True, text=True,
        timeout=600)
    assert trained.returncode == 0, trained.stderr[-2000:]
    resolved = json.loads((tmp_path / "best" / "config.json").read_text())
    assert resolved["sfocus"]["w_ac"] == pytest.approx(results.best_values["w_ac"])
    assert resolved["learning_rate"] == pytest.approx(results.best_values["lr"])


def test_failed_trials_are_reported_and_fail_the_command(tmp_path):
    config = base_config(tmp_path)
    workdir = tmp_path / "tune"
    # sigma > 1 is not a valid SFocusConfig: nearly every sampled trial's build raises
    # (the range starts valid: Keras Tuner builds once with the low end first).
    args = [f"--workdir={workdir}", "--dataset=fashion_mnist", f"--data_dir={config.data_dir}",
            "--model=resnet8", "--epochs=1", "--steps_per_epoch=2", "--eval_steps=1",
            "--batch_size=8", "--max_trials=2", "--ranges=sigma=0.999:9", "--seed=3"]
    result = subprocess.run([sys.executable, "-m", "sfocus_tf.cli.tune", *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    assert "trial(s) failed" in result.stderr.strip().splitlines()[-1]
    rows = json.loads((workdir / "results.json").read_text())["trials"]
    assert rows and all(row["status"] in ("FAILED", "INVALID") for row in rows)
    assert all("SFocusConfig.sigma" in row["error"] for row in rows)
    assert not (workdir / "best.flags").exists()


@pytest.mark.parametrize("kind, oracle", [("random", "RandomSearchOracle"),
                                          ("bayesian", "BayesianOptimizationOracle"),
                                          ("hyperband", "HyperbandOracle")])
def test_every_tuner_kind_is_built_with_the_objective(tmp_path, kind, oracle):
    from sfocus_tf.studies.tuning import make_tuner
    hypermodel = SFocusHyperModel(base_config(tmp_path).resolve(), SearchSpace(), 2)
    options = dict(objective="val_loss", direction="min", max_trials=3, epochs=2, seed=0)
    tuner = make_tuner(kind, hypermodel, directory=str(tmp_path / kind), **options)
    assert type(tuner.oracle).__name__ == oracle
    assert tuner.oracle.objective.name == "val_loss" and tuner.oracle.objective.direction == "min"
    with pytest.raises(ValueError, match="unknown tuner"):
        make_tuner("grid", hypermodel, directory=str(tmp_path / "grid"), **options)
