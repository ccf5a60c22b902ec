"""What ``sfocus-eval`` writes into its output folder, each file atomically.

    eval.json       every metric (``eval_metrics.MetricTotals.summary``), plus the
                    dataset and split
    eval.md         the metrics that are fractions, with their chance levels beside;
                    the accuracy per class, the upper-body confusions (Fashion-MNIST)
                    and the most confused class pairs, as Markdown tables
    overlays.png    image | true and confusing class at the last and the inner
                    layer, for the first examples

``evaluation`` computes the results; this module only writes them.
"""

from __future__ import annotations

import os

import numpy as np

from sfocus_tf.evaluation import overlays
from sfocus_tf.common.files import makedirs, write_json, write_text

RESULTS = "eval.json"
MARKDOWN = "eval.md"
OVERLAYS = "overlays.png"


# Figures shown with their chance level (unrelated maps: another image's confusing
# map) or random baseline (as many random positions erased) beside them.
BESIDE = {"attention_overlap": "attention_overlap_chance",
          "top20_overlap": "top20_overlap_chance", "peak_distance": "peak_distance_chance",
          "faithfulness_drop": "faithfulness_drop_random"}


def markdown_report(results: dict, title: str, class_names=None) -> str:
    """The fractions (with their chance levels beside), the per-class accuracy (classes
    named by ``class_names``), the upper-body confusions and the most confused pairs."""
    lines = [f"# {title}", "", "| metric | value | chance / random |", "|---|---|---|"]
    for key, value in results.items():
        if isinstance(value, float) and key not in BESIDE.values():
            beside = results.get(BESIDE.get(key))
            lines.append(f"| {key} | {value:.4f} | "
                         + ("" if beside is None else f"{beside:.4f}") + " |")
    if any(key in results for key in BESIDE):
        lines += ["", "Chance: the true map of each image against the confusing map of the "
                      "next image of its batch. Random: the faithfulness drop when as many "
                      "random positions are erased as the map's top 10 %."]
    lines += _per_class(results.get("per_class_accuracy"), class_names)
    lines += _confusions(results.get("upper_body_confusions"))
    pairs = results.get("most_confused_pairs", [])
    if pairs:
        lines += ["", "Most confused class pairs (true class, the class it is most often "
                      "confused with):", "",
                  "| true | confused with | examples | misclassified as it | mean overlap |",
                  "|---|---|---|---|---|"]
        lines += [f"| {p['true']} | {p['confused_with']} | {p['examples']} | {p['errors']} "
                  f"| {p['mean_overlap']:.4f} |" for p in pairs]
    return "\n".join(lines) + "\n"


def _per_class(accuracies, class_names) -> list:
    if not accuracies:
        return []
    name = (lambda c: class_names[c]) if class_names else str  # noqa: E731
    return ["", "Accuracy per class:", "", "| class | accuracy |", "|---|---|"] + [
        f"| {name(c)} | " + ("no examples" if a is None else f"{a:.4f}") + " |"
        for c, a in enumerate(accuracies)]


def _confusions(table) -> list:
    if not table:
        return []
    classes = table["classes"]
    return (["", "Upper-body garments: examples of the true class (row) predicted as "
                 "each (column):", "",
             "| true \\ predicted | " + " | ".join(classes) + " |",
             "|---|" + "---|" * len(classes)]
            + [f"| {true} | " + " | ".join(map(str, row)) + " |"
               for true, row in zip(classes, table["counts"])])


def write_report(output_dir: str, results: dict, *, title: str,
                 overlay_grid: np.ndarray, class_names=None) -> None:
    """Writes ``eval.json``, ``eval.md`` (headed ``title``, classes named by
    ``class_names``) and ``overlays.png`` (``overlays.render``'s grid) into
    ``output_dir``, creating it."""
    makedirs(output_dir)
    write_json(os.path.join(output_dir, RESULTS), results)
    write_text(os.path.join(output_dir, MARKDOWN),
               markdown_report(results, title, class_names))
    overlays.save_png(os.path.join(output_dir, OVERLAYS), overlay_grid)
