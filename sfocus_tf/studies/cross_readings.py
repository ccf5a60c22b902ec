"""Every finished model of a study read with every arm's map definition.

Whether a reading's maps are points because of what training did or because of how the
reading defines a map is told apart by reading the *baseline's* models (trained with
cross-entropy only) the same way: if they are points too, the definition makes them so.
For each (model arm, reading arm) this gives the effective area of the true-class maps at
both layers and the shares of empty maps (``modeling.diagnostics.map_coverage``), on the
first validation images, in inference mode; written to ``cross_readings.md`` and
``cross_readings.json`` of the study.
"""

from __future__ import annotations

import os

import numpy as np

from sfocus_tf import data
from sfocus_tf.common.files import write_json, write_text
from sfocus_tf.configs import run_dir
from sfocus_tf.modeling.diagnostics import map_coverage
from sfocus_tf.modeling.sfocus_config import GRADCAM_READING

# The SFocusConfig fields that define what a map is (the others weight the losses).
READING_FIELDS = tuple(GRADCAM_READING) + ("map_temperature",)
SHOWN = ("area_target_last", "area_target_inner", "empty_target_last", "empty_target_inner")


def reading_of(config) -> dict:
    """The map-defining fields of an SFocusConfig."""
    return {name: getattr(config, name) for name in READING_FIELDS}


def cross_readings(workdir: str, arms, seeds, examples: int = 256) -> dict:
    """``{model arm: {reading arm: {figure: mean over seeds}}}`` for the finished runs of
    ``workdir`` whose model is here (models are not committed: run where they trained)."""
    runs = {(arm, seed): os.path.join(workdir, arm, f"seed-{seed}")
            for arm in arms for seed in seeds}
    loaded = {key: run_dir.load_run(path) for key, path in runs.items()
              if os.path.exists(run_dir.path(path, run_dir.MODEL))}
    if not loaded:
        raise ValueError(f"no finished run with its model.keras under {workdir}")
    readings = {}
    for (arm, _), (config, _) in loaded.items():
        readings.setdefault(arm, reading_of(config.sfocus))
    config = next(iter(loaded.values()))[0]
    images, labels = data.first_examples(
        data.load(config.preset(), data.VALIDATION, examples, training=False,
                  data_dir=config.data_dir), examples)
    table = {}
    for (arm, seed), (_, model) in loaded.items():
        for reading_arm, reading in readings.items():
            figures = map_coverage(model, images, labels, reading=reading)
            cell = table.setdefault(arm, {}).setdefault(reading_arm, {})
            for name in SHOWN:
                cell.setdefault(name, []).append(float(figures[name]))
    summary = {arm: {reading: {name: float(np.mean(values)) for name, values in cell.items()}
                     for reading, cell in row.items()} for arm, row in table.items()}
    write_json(os.path.join(workdir, "cross_readings.json"),
               {"readings": readings, "areas": summary, "examples": examples})
    write_text(os.path.join(workdir, "cross_readings.md"), markdown(summary))
    return summary


def markdown(summary: dict) -> str:
    """One table per figure: rows the models' arms, columns the readings."""
    readings = list(next(iter(summary.values())))
    lines = []
    for name in SHOWN:
        lines += [f"**{name}** (rows: the arm the model trained with; columns: the arm "
                  "whose map definition reads it)", "",
                  "| model \\ reading | " + " | ".join(readings) + " |",
                  "|---|" + "---|" * len(readings)]
        for arm, row in summary.items():
            lines.append(f"| {arm} | " + " | ".join(
                f"{row[r][name]:.3f}" if r in row else "" for r in readings) + " |")
        lines.append("")
    return "\n".join(lines)
