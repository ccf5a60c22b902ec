"""How each dataset trains by default: the schedule fields a recipe or the user leaves
unset (None) take its dataset's entry in ``TrainConfig.resolve()``."""

from __future__ import annotations

# How each dataset trains when a recipe leaves these fields at None: the papers'
# schedules for the small datasets, fine-tuning-sized ones for the ImageNet-like.
_SMALL = dict(batch_size=128, epochs=200, schedule="multistep", milestones=(100, 150),
              learning_rate=0.1, weight_decay=5e-4)
_SMALL_COSINE = dict(_SMALL, schedule="cosine", milestones=())
_IMAGENET_LIKE = dict(batch_size=64, epochs=100, schedule="cosine", milestones=(),
                      learning_rate=0.01, weight_decay=1e-4)
DATASET_SCHEDULES = {
    "cifar10": _SMALL,
    "cifar100": _SMALL,
    "fashion_mnist": dict(_SMALL_COSINE, epochs=30),
    "fashion_mnist_cluttered": dict(_SMALL_COSINE, epochs=4),
    "fashion_mnist_duo": dict(_SMALL_COSINE, epochs=4),
    "caltech101": _IMAGENET_LIKE,
    "caltech_birds2011": _IMAGENET_LIKE,
    "caltech256": _IMAGENET_LIKE,
    "image_folder": _IMAGENET_LIKE,
    "voc/2012": dict(_IMAGENET_LIKE, epochs=60),
    "imagenet2012": dict(_IMAGENET_LIKE, batch_size=256, epochs=90, schedule="multistep",
                         milestones=(30, 60, 80), learning_rate=0.1),
}


def dataset_schedule(dataset: str) -> dict:
    """The schedule fields ``dataset`` trains with by default."""
    if dataset not in DATASET_SCHEDULES:
        raise ValueError(f"no default schedule for dataset {dataset!r}: add it to "
                         "sfocus_tf.configs.schedules.DATASET_SCHEDULES")
    return dict(DATASET_SCHEDULES[dataset])
