"""Each command resolves its dataset's preset once, at its entry point, and passes it
down (training: test_training; tuning: test_tuning; studies: test_reproduce)."""

import pytest

from fake_data import write_fake_fashion
from sfocus_tf import SFocusModel
from sfocus_tf.configs import run_dir
from sfocus_tf.evaluation.evaluate import evaluate_run
from sfocus_tf.serving.export import export_run
from sfocus_tf.common.files import save_model, write_json
from sfocus_tf.configs.train_config import TrainConfig
from tiny import tiny_backbone


@pytest.fixture
def finished_run(tmp_path):
    """A run directory as training leaves it, with an untrained tiny model."""
    config = TrainConfig(dataset="fashion_mnist", data_dir=write_fake_fashion(tmp_path, 4))
    workdir = str(tmp_path / "run")
    write_json(run_dir.path(workdir, run_dir.CONFIG), config.to_dict())
    save_model(SFocusModel(tiny_backbone((28, 28, 1), 10), 10),
               run_dir.path(workdir, run_dir.MODEL))
    return workdir


def test_evaluation_looks_the_dataset_up_once(finished_run, tmp_path, preset_lookups):
    evaluate_run(finished_run, str(tmp_path / "eval"), batch_size=2, num_overlays=2)
    assert preset_lookups == ["fashion_mnist"]


def test_export_looks_the_dataset_up_once(finished_run, tmp_path, preset_lookups):
    export_run(finished_run, str(tmp_path / "export"))
    assert preset_lookups == ["fashion_mnist"]
