"""SFOCUS in one page: a backbone, a few training steps, the attention maps.

    python examples/quickstart.py [--steps=60] [--output=quickstart.png]

Runs in about a minute on a laptop CPU, on Fashion-MNIST read offline from Debian's
``dataset-fashion-mnist`` files (``make data`` installs them).
"""

import argparse

# ## 1. A backbone that says which feature maps SFOCUS reads
#
# A backbone is a Keras model with two outputs: ``inner`` (an inner stage) and ``last``
# (the last convolutional stage). The classifier head (global average pooling + dense)
# belongs to SFocusModel, so the last layer's Grad-CAM has a closed form.
import keras

import keras_models
from sfocus_tf import SFocusConfig, SFocusModel, attention_maps, data
from sfocus_tf.evaluation import overlays


def main(steps: int, output: str) -> None:
    preset = data.get_preset("fashion_mnist")
    backbone = keras_models.get("resnet8", preset.image_size, preset.num_classes)
    print("feature maps:", {k: tuple(v.shape) for k, v in backbone.output.items()})

    # ## 2. The objective
    #
    # SFocusConfig holds every switch; here the scale-free softmax maps, whose spread does
    # not depend on the logit scale, and the consistency mask that can reach 1 anywhere.
    config = SFocusConfig(map_activation="softmax", map_temperature="spatial_std",
                          ac_mask="resized_map")
    model = SFocusModel(backbone, preset.num_classes, config)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))  # no loss argument

    # ## 3. Training: ordinary model.fit on (images, labels) batches
    #
    # "train" is the training split less the 5,000 images held out for validation.
    train = data.load(preset, "train", 64, training=True, seed=0, repeat=True)
    validation = data.load(preset, "validation", 64, training=False).take(4)
    history = model.fit(train, steps_per_epoch=steps, epochs=1, validation_data=validation,
                        verbose=2)
    print({name: round(values[-1], 4) for name, values in history.history.items()
           if name in ("ce", "as_last", "as_inner", "ac", "val_accuracy")})

    # ## 4. The maps: true class and most confusing class, at both layers
    images, labels = data.first_examples(validation, 4)
    maps = attention_maps(model, images, labels)
    print("confused with:", [preset_name(c) for c in maps["confusing_class"].numpy()])

    # ## 5. Overlays, as sfocus-eval draws them (standard Grad-CAM of the same model)
    overlays.save_png(output, overlays.render(model, images, labels,
                                              data.class_names(preset)))
    print("overlays:", output)


def preset_name(class_id: int) -> str:
    return data.class_names("fashion_mnist")[int(class_id)]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--output", default="quickstart.png")
    arguments = parser.parse_args()
    main(arguments.steps, arguments.output)
