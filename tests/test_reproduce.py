import json

import numpy as np
import pytest

from fake_data import write_fake_fashion
from sfocus_tf.modeling.sfocus_config import SFocusConfig
from sfocus_tf.studies.reproduction import ARMS, arm_config, compare_overlays, run_study
from sfocus_tf.configs.train_config import TrainConfig


def test_study_trains_both_arms_per_seed_and_summarises(tmp_path, preset_lookups):
    base = TrainConfig(dataset="fashion_mnist", data_dir=write_fake_fashion(tmp_path, 32),
                       model="resnet8", epochs=1, steps_per_epoch=2, eval_steps=1,
                       batch_size=8)
    workdir = tmp_path / "study"
    summary = run_study(base, [0, 1], str(workdir))
    assert len(preset_lookups) == 1 + 4  # the study's (its steps), then once per run
    per_run = {(arm, seed): json.loads((workdir / arm / f"seed-{seed}" / "metrics.json")
                                       .read_text())
               for arm in ("baseline", "sfocus") for seed in (0, 1)}
    baseline_config = json.loads((workdir / "baseline" / "seed-1" / "config.json").read_text())
    assert baseline_config["seed"] == 1 and baseline_config["sfocus"]["w_ac"] == 0.0
    for arm in ("baseline", "sfocus"):
        accuracies = [per_run[(arm, s)]["test_accuracy"] for s in (0, 1)]
        stats = summary["test"][arm]["accuracy"]
        assert stats["mean"] == pytest.approx(np.mean(accuracies))
        assert stats["std"] == pytest.approx(np.std(accuracies, ddof=1))
    differences = [per_run[("sfocus", s)]["test_accuracy"]
                   - per_run[("baseline", s)]["test_accuracy"] for s in (0, 1)]
    paired = summary["test"]["sfocus"]["accuracy_difference"]
    assert paired["mean"] == pytest.approx(np.mean(differences))
    assert summary["test"]["sfocus"]["better_than_baseline_in"] == sum(d > 0 for d in differences)
    empty = [per_run[("sfocus", s)]["empty_confusing_map"] for s in (0, 1)]
    assert summary["test"]["sfocus"]["empty C"]["mean"] == pytest.approx(np.mean(empty))
    table = (workdir / "results.md").read_text()
    assert "| baseline |" in table and "| sfocus |" in table and "same seed" in table
    assert "| top-20% overlap | top-20% chance |" in table
    confusions = per_run[("sfocus", 0)]["test_upper_body_confusions"]  # Fashion-MNIST's
    assert confusions["classes"] == ["T-shirt/top", "Pullover", "Coat", "Shirt"]
    assert len(per_run[("sfocus", 0)]["test_per_class_accuracy"]) == 10
    # Each model read with each arm's map definition; a model under its own reading
    # has the area its last epoch's diagnostics measured on the same images.
    from sfocus_tf.studies.cross_readings import cross_readings
    crossed = cross_readings(str(workdir), ["baseline", "sfocus"], [0, 1])
    assert set(crossed) == {"baseline", "sfocus"}
    assert set(crossed["baseline"]) == {"baseline", "sfocus"}
    for row in crossed.values():
        for cell in row.values():
            assert 0.0 <= cell["area_target_last"] <= 1.0
    own = np.mean([per_run[("sfocus", s)]["history"]["0"]["val_area_target_last"]
                   for s in (0, 1)])
    assert crossed["sfocus"]["sfocus"]["area_target_last"] == pytest.approx(own, rel=1e-4)
    assert "| baseline |" in (workdir / "cross_readings.md").read_text()
    # A second call finds every run finished and trains nothing.
    mtime = (workdir / "sfocus" / "seed-0" / "metrics.json").stat().st_mtime
    assert run_study(base, [0, 1], str(workdir)) == summary
    assert (workdir / "sfocus" / "seed-0" / "metrics.json").stat().st_mtime == mtime
    # Trained side by side in sfocus-train processes: the same configs, the same weights.
    side_by_side = tmp_path / "parallel"
    run_study(base, [1], str(side_by_side), parallel=2)
    for arm in ("baseline", "sfocus"):
        run = side_by_side / arm / "seed-1"
        assert (json.loads((run / "config.json").read_text())
                == json.loads((workdir / arm / "seed-1" / "config.json").read_text()))
        assert (json.loads((run / "metrics.json").read_text())["weights_checksum"]
                == per_run[(arm, 1)]["weights_checksum"])
        assert "--workdir" not in (run / "train.flags").read_text()
    with pytest.raises(ValueError, match="parallel must be a positive number"):
        run_study(base, [1], str(side_by_side), parallel=0)


def test_failed_processes_are_named_with_their_logs(tmp_path):
    """(Runs that succeed side by side: the end of the study test above.)"""
    from sfocus_tf.studies import parallel_runs
    bad = TrainConfig(dataset="fashion_mnist", data_dir=str(tmp_path / "missing"),
                      model="resnet8", epochs=1, steps_per_epoch=1, eval_steps=1)
    runs = {str(tmp_path / "bad-a"): bad, str(tmp_path / "bad-b"): bad.replace(seed=1)}
    with pytest.raises(parallel_runs.RunsFailed, match=r"2 of 2 runs failed .*bad-a, .*bad-b$"):
        parallel_runs.train_all(runs, parallel=1)  # one at a time: both still tried
    for run in runs:
        assert "is not a directory" in (tmp_path / run / "train.log").read_text()
