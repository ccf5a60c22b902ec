"""sfocus-eval: accuracy and attention quality of a trained run.

    sfocus-eval --workdir=runs/cub [--split=test] [--eval_steps=N] [--output_dir=DIR]

Writes ``eval.json``, ``eval.md`` and ``overlays.png`` (image | true class |
confusing class) into ``--output_dir`` (default ``<workdir>/eval``): top-1/top-5
accuracy or mAP, attention overlap and consistency, localisation inside the
ground-truth boxes (share of attention energy, pointing game) where the dataset
has boxes, and the most confused class pairs with their attention overlap.
"""

from __future__ import annotations

import os

from absl import flags

from sfocus_tf import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A training run's directory (model.keras, config.json).")
flags.DEFINE_string("output_dir", None, "Where to write; default: <workdir>/eval.")
flags.DEFINE_string("split", None, "Split to evaluate; default: the preset's test split.")
flags.DEFINE_string("data_dir", None, "Override the run's data directory.")
flags.DEFINE_integer("eval_steps", None, "Batches to evaluate; default: the whole split.")
flags.DEFINE_integer("batch_size", 64, "Evaluation batch size.")
flags.DEFINE_integer("overlays", 16, "Examples in overlays.png.")


def evaluate_run(workdir, output_dir, split=None, data_dir=None, eval_steps=None,
                 batch_size=64, num_overlays=16) -> dict:
    import keras

    from sfocus_tf import data, evaluation, overlays
    from sfocus_tf.checkpointing import atomic_path, read_json, write_json
    from sfocus_tf.training import fixed_batch

    config = read_json(os.path.join(workdir, "config.json"))
    model_path = os.path.join(workdir, "model.keras")
    if config is None or not os.path.isfile(model_path):
        raise FileNotFoundError(f"{workdir} holds no finished run (config.json, model.keras)")
    data_dir = data_dir or config["data_dir"]
    preset = data.get_preset(config["dataset"], image_size=config["image_size"],
                             data_dir=data_dir)
    model = keras.models.load_model(model_path)
    load = lambda boxes: data.load(config["dataset"], split, batch_size, training=False,  # noqa
                                   data_dir=data_dir, image_size=config["image_size"],
                                   with_boxes=boxes)
    arrays = evaluation.collect(model, load(preset.has_boxes), eval_steps)
    names = data.class_names(config["dataset"], data_dir=data_dir)
    results = evaluation.summarise(arrays, preset.multi_label, names)
    results.update(dataset=config["dataset"], split=split or preset.test_split)
    os.makedirs(output_dir, exist_ok=True)
    write_json(os.path.join(output_dir, "eval.json"), results)
    with atomic_path(os.path.join(output_dir, "eval.md"), ".md") as temporary:
        with open(temporary, "w") as f:
            f.write(evaluation.markdown_report(
                results, f"{config['dataset']} ({results['split']}): {workdir}"))
    images, labels = fixed_batch(load(False), num_overlays, preset.multi_label)
    overlays.save_png(os.path.join(output_dir, "overlays.png"),
                      overlays.render(model, images, labels, names))
    return results


def _evaluate() -> str:
    output_dir = FLAGS.output_dir or os.path.join(FLAGS.workdir, "eval")
    results = evaluate_run(FLAGS.workdir, output_dir, FLAGS.split, FLAGS.data_dir,
                           FLAGS.eval_steps, FLAGS.batch_size, FLAGS.overlays)
    shown = {k: round(v, 4) for k, v in results.items() if isinstance(v, float)}
    return f"{shown}; written to {output_dir}"


run = cli.entry_point("sfocus-eval", _evaluate, required=("workdir",))

if __name__ == "__main__":
    run()
