import json

import numpy as np

from sfocus_tf.evaluation import overlays, report

RESULTS = {"accuracy": 0.75, "examples": 8, "dataset": "fashion_mnist", "split": "test",
           "most_confused_pairs": [{"true": "Shirt", "confused_with": "T-shirt/top",
                                    "examples": 3, "errors": 2, "mean_overlap": 0.41237}]}


def test_markdown_lists_the_float_metrics_and_the_confused_pairs():
    text = report.markdown_report(RESULTS, "fashion_mnist (test): runs/x")
    assert text.startswith("# fashion_mnist (test): runs/x\n")
    assert "| accuracy | 0.7500 |" in text
    assert "| examples | 8" not in text  # counts and names are in eval.json only
    assert text.endswith("| Shirt | T-shirt/top | 3 | 2 | 0.4124 |\n")


def test_without_pairs_there_is_no_pairs_table():
    text = report.markdown_report({"mAP": 0.5}, "voc")
    assert "confused with" not in text and "| mAP | 0.5000 |" in text


def test_write_report_writes_the_three_files(tmp_path):
    grid = np.zeros((4, 6, 3), np.uint8)
    grid[:, :3] = 255
    out = tmp_path / "new" / "eval"
    report.write_report(str(out), RESULTS, title="t", overlay_grid=grid)
    assert sorted(p.name for p in out.iterdir()) == ["eval.json", "eval.md", "overlays.png"]
    assert json.loads((out / "eval.json").read_text()) == RESULTS
    assert (out / "eval.md").read_text() == report.markdown_report(RESULTS, "t")
    np.testing.assert_array_equal(overlays.load_png(str(out / "overlays.png")), grid)


def test_chance_levels_stand_beside_their_figures_and_the_class_tables_follow():
    results = {"top20_overlap": 0.25, "top20_overlap_chance": 0.5, "faithfulness_drop": 0.3,
               "faithfulness_drop_random": 0.125, "per_class_accuracy": [0.5, None],
               "upper_body_confusions": {"classes": ["T-shirt/top", "Pullover", "Coat",
                                                     "Shirt"],
                                         "counts": [[3, 0, 0, 1]] + [[0, 0, 0, 0]] * 3}}
    text = report.markdown_report(results, "t", class_names=["T-shirt/top", "Trouser"])
    assert "| top20_overlap | 0.2500 | 0.5000 |" in text
    assert "| faithfulness_drop | 0.3000 | 0.1250 |" in text
    assert "| top20_overlap_chance |" not in text  # shown beside, not as a row
    assert "| T-shirt/top | 0.5000 |" in text and "| Trouser | no examples |" in text
    assert "| T-shirt/top | 3 | 0 | 0 | 1 |" in text
