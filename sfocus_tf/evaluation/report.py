"""What ``sfocus-eval`` writes into its output folder, each file atomically.

    eval.json       every metric (``eval_metrics.MetricTotals.summary``), plus the
                    dataset and split
    eval.md         the metrics that are fractions, and the most confused class
                    pairs, as Markdown tables
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


def markdown_report(results: dict, title: str) -> str:
    lines = [f"# {title}", "", "| metric | value |", "|---|---|"]
    for key, value in results.items():
        if isinstance(value, float):
            lines.append(f"| {key} | {value:.4f} |")
    pairs = results.get("most_confused_pairs", [])
    if pairs:
        lines += ["", "Most confused class pairs (true class, the class it is most often "
                      "confused with):", "",
                  "| true | confused with | examples | misclassified as it | mean overlap |",
                  "|---|---|---|---|---|"]
        lines += [f"| {p['true']} | {p['confused_with']} | {p['examples']} | {p['errors']} "
                  f"| {p['mean_overlap']:.4f} |" for p in pairs]
    return "\n".join(lines) + "\n"


def write_report(output_dir: str, results: dict, *, title: str,
                 overlay_grid: np.ndarray) -> None:
    """Writes ``eval.json``, ``eval.md`` (headed ``title``) and ``overlays.png``
    (``overlays.render``'s grid) into ``output_dir``, creating it."""
    makedirs(output_dir)
    write_json(os.path.join(output_dir, RESULTS), results)
    write_text(os.path.join(output_dir, MARKDOWN), markdown_report(results, title))
    overlays.save_png(os.path.join(output_dir, OVERLAYS), overlay_grid)
