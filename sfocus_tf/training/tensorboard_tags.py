"""Where each number a run logs goes in TensorBoard: its run folder and its tag.

A tag is ``<group>/<name>``, ``name`` being the fit log's or ``metrics.json``'s name less
its ``val_``/``test_``/``validation_`` prefix; the parts of the objective are
``loss/terms/<name>``. The split is the run folder (``train/``, ``validation/``,
``test/``), so one chart holds the train and validation curves of a figure, and the
final evaluation's test figure as the last point.

The groups are named for TensorBoard 2.21's Time Series tab, which shows one section
per group in ASCII order of the names and opens only the first two: ``accuracy/`` and
``loss/`` (the objective and its terms) open first; ``maps/`` (overlap, consistency,
localisation), ``maps_coverage/`` (areas and empty maps), ``optimizer/`` (learning
rate, each term's gradient against cross-entropy's), ``overlays/`` (images) and
``run/`` (seconds, examples) follow, closed. A name sorting before ``loss``
(``attention``, ``diagnostics``, ``learning_rate``) would close the loss.
"""

from __future__ import annotations

from sfocus_tf.modeling import fit_metrics, terms

TRAIN, VALIDATION, TEST, ATTENTION = "train", "validation", "test", "attention"
SPLIT_PREFIXES = {"val_": VALIDATION, "validation_": VALIDATION, "test_": TEST}

ACCURACY, LOSS, MAPS, COVERAGE, OPTIMIZER, OVERLAYS, RUN = (
    "accuracy", "loss", "maps", "maps_coverage", "optimizer", "overlays", "run")
LOSS_PARTS = terms.NAMES + (fit_metrics.REGULARIZATION,)
_BOOKKEEPING = ("examples", "train_seconds", "eval_seconds")


def group(name: str) -> str:
    """The group of a figure named without its split prefix (``accuracy``, ``ce``,
    ``area_target_last``, ``learning_rate``, ``attention_overlap``, ...)."""
    if name in ("accuracy", "top5_accuracy"):
        return ACCURACY
    if name == "loss" or name in LOSS_PARTS:
        return LOSS
    if name.startswith(("area_", "empty_")):
        return COVERAGE
    if name.startswith("grad_ratio_") or name == "learning_rate":
        return OPTIMIZER
    # the final evaluation's other figures (overlap, consistency, peak distance,
    # faithfulness, localisation, and their chance levels) are about the maps
    return RUN if name in _BOOKKEEPING else MAPS


def tag(name: str) -> str:
    """``<group>/<name>``; the objective's parts under ``loss/terms/``, after the
    objective (``loss/loss``) in the group's order."""
    if name in LOSS_PARTS:
        return f"{LOSS}/terms/{name}"
    return f"{group(name)}/{name}"


def split(key: str, unprefixed: str = TRAIN) -> tuple[str, str]:
    """``(run folder, name)`` of a prefixed key: ``val_accuracy`` -> (validation,
    accuracy); a key without a split prefix belongs to ``unprefixed``."""
    for prefix, run in SPLIT_PREFIXES.items():
        if key.startswith(prefix):
            return run, key[len(prefix):]
    return unprefixed, key


def final_place(key: str) -> tuple[str, str]:
    """``(run folder, tag)`` of a ``metrics.json`` figure: ``test_accuracy`` ->
    (test, accuracy/accuracy), ``validation_attention_overlap`` -> (validation,
    maps/attention_overlap); the unprefixed ones are test-set figures or the run's
    own (``attention_overlap``, ``train_seconds``): ``test/``."""
    run, name = split(key, unprefixed=TEST)
    return run, tag(name)
