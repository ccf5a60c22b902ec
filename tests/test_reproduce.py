import json

import numpy as np
import pytest

from fake_data import write_fake_fashion
from sfocus_tf.reproduction import run_study
from sfocus_tf.train_config import TrainConfig


def test_study_trains_both_arms_per_seed_and_summarises(tmp_path):
    base = TrainConfig(dataset="fashion_mnist", data_dir=write_fake_fashion(tmp_path, 32),
                       model="resnet8", epochs=1, steps_per_epoch=2, eval_steps=1,
                       batch_size=8)
    workdir = tmp_path / "study"
    summary = run_study(base, [0, 1], str(workdir))
    per_run = {(arm, seed): json.loads((workdir / arm / f"seed-{seed}" / "metrics.json")
                                       .read_text())
               for arm in ("baseline", "sfocus") for seed in (0, 1)}
    baseline_config = json.loads((workdir / "baseline" / "seed-1" / "config.json").read_text())
    assert baseline_config["seed"] == 1 and baseline_config["sfocus"]["w_ac"] == 0.0
    for arm in ("baseline", "sfocus"):
        accuracies = [per_run[(arm, s)]["test_accuracy"] for s in (0, 1)]
        stats = summary["arms"][arm]["accuracy"]
        assert stats["mean"] == pytest.approx(np.mean(accuracies))
        assert stats["std"] == pytest.approx(np.std(accuracies, ddof=1))
    differences = [per_run[("sfocus", s)]["test_accuracy"]
                   - per_run[("baseline", s)]["test_accuracy"] for s in (0, 1)]
    assert summary["accuracy_difference"]["mean"] == pytest.approx(np.mean(differences))
    table = (workdir / "results.md").read_text()
    assert "| baseline |" in table and "| sfocus |" in table and "paired by seed" in table
    # A second call finds every run finished and trains nothing.
    mtime = (workdir / "sfocus" / "seed-0" / "metrics.json").stat().st_mtime
    assert run_study(base, [0, 1], str(workdir)) == summary
    assert (workdir / "sfocus" / "seed-0" / "metrics.json").stat().st_mtime == mtime
