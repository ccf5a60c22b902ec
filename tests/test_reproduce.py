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


def test_failed_processes_are_named_and_the_others_kept(tmp_path):
    from sfocus_tf.studies import parallel_runs
    good = TrainConfig(dataset="fashion_mnist", data_dir=write_fake_fashion(tmp_path, 16),
                       model="resnet8", epochs=1, steps_per_epoch=1, eval_steps=1,
                       batch_size=8)
    bad = good.replace(data_dir=str(tmp_path / "missing"))
    runs = {str(tmp_path / "good"): good, str(tmp_path / "bad"): bad}
    with pytest.raises(parallel_runs.RunsFailed, match=r"1 of 2 runs failed .*bad$"):
        parallel_runs.train_all(runs, parallel=2)
    assert (tmp_path / "good" / "metrics.json").exists()
    assert "is not a directory" in (tmp_path / "bad" / "train.log").read_text()


def test_named_arms_and_the_warmup_arm():
    assert arm_config("sfocus", 100) == SFocusConfig()
    assert not arm_config("baseline", 100).uses_attention
    public = arm_config("public_reading", 100)
    assert (public.second_order, public.gradcam_weights) == (False, "relu_mean")
    warm = arm_config("warmup", 400)
    assert (warm.warmup_steps, warm.ramp_steps) == (100, 100)
    # arms are changes to the initial reading: they do not move with the defaults
    assert arm_config("initial_default", 1).replace(w_ac=0.0) == ARMS["no_consistency"]
    with pytest.raises(ValueError, match="unknown arm 'nope'; valid arms: sfocus, baseline"):
        arm_config("nope", 1)


def test_a_study_needs_the_baseline(tmp_path):
    with pytest.raises(ValueError, match="baseline"):
        run_study(TrainConfig(), [0], str(tmp_path), arms=("sfocus",))


def test_compare_overlays_puts_arms_side_by_side(tmp_path):
    from PIL import Image
    for arm, shade in (("baseline", 0), ("sfocus", 200)):
        folder = tmp_path / arm / "seed-3" / "attention"
        folder.mkdir(parents=True)
        Image.new("RGB", (30, 20), (shade, shade, shade)).save(folder / "final.png")
    path = compare_overlays(str(tmp_path), ["baseline", "sfocus"], 3)
    picture = np.asarray(Image.open(path).convert("RGB"))
    assert picture.shape == (20 + 16, 2 * (30 + 8), 3)
    assert picture[30, 10].tolist() == [0, 0, 0] and picture[30, 38 + 10].tolist() == [200] * 3


def test_summary_of_a_study_in_progress_uses_the_finished_runs():
    def run(accuracy, validation):
        return {"test_accuracy": accuracy, "validation_accuracy": validation,
                "attention_overlap": 0.5, "attention_consistency": 0.5,
                "empty_target_map": 0.0, "empty_confusing_map": 0.0, "train_seconds": 1.0,
                "history": {"0": {"grad_ratio_as_last": 9.0},
                            "1": {"grad_ratio_as_last": 0.25}}}
    runs = {"baseline": {0: run(0.80, 0.70), 1: run(0.82, 0.72)},
            "a": {0: run(0.83, 0.69), 1: run(0.81, 0.75)},
            "b": {1: run(0.90, 0.60)}}  # seed 0 not finished yet
    from sfocus_tf.studies.reproduction import markdown, summarise
    summary = summarise(runs, TrainConfig(), [0, 1])
    assert summary["test"]["a"]["accuracy_difference"]["mean"] == pytest.approx(0.01)
    assert summary["test"]["a"]["better_than_baseline_in"] == 1
    assert summary["test"]["b"]["accuracy_difference"] == {"mean": pytest.approx(0.08),
                                                           "std": 0.0, "n": 1}
    assert summary["validation"]["a"]["accuracy_difference"]["mean"] == pytest.approx(0.01)
    assert summary["validation"]["b"]["accuracy_difference"]["mean"] == pytest.approx(-0.12)
    # the diagnostics come from the last epoch of the history
    assert summary["validation"]["a"]["grad ratio AS last"]["mean"] == pytest.approx(0.25)
    validation_only = markdown(summary)
    assert "| b | 1 | -12.00 ± 0.00 (0/1 better) |" in validation_only
    assert "+8.00" not in validation_only and "**test**" not in validation_only
    assert "| b | 1 | +8.00 ± 0.00 (1/1 better) |" in markdown(summary, report_test=True)
    # paired tests for arms with two seeds or more: a (-0.01, +0.03), not b (one seed)
    tests = summary["validation"]["a"]["paired_tests"]
    assert tests["n"] == 2 and tests["mean"] == pytest.approx(0.01)
    assert tests["p_wilcoxon"] == pytest.approx(1.0)  # 2 of 4 sign assignments, two-sided
    assert "paired_tests" not in summary["validation"]["b"]
    assert "| a | 2 | +1.00 | [" in validation_only
    assert not any(line.startswith("| b | 1 | ") and "[" in line
                   for line in validation_only.splitlines())
