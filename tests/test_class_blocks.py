"""The ++ variant's per-class last blocks and the class-block head."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_models
import numpy_reference as ref
from sfocus_tf import SFocusConfig, SFocusModel, attention_maps, data
from sfocus_tf.modeling.gradcam import compute_attention
from sfocus_tf.modeling.sfocus_config import GRADCAM_READING
from sfocus_tf.serving.export import export_saved_model
from sfocus_tf.training.build import dtype_policy

CLASSES, WIDTH, SHAPE = 3, 2, (12, 12, 1)


def plusplus(config=None, weight_decay=0.0, **kwargs):
    backbone = keras_models.get("resnet8", SHAPE, CLASSES, class_block_width=WIDTH,
                                weight_decay=weight_decay, **kwargs)
    return SFocusModel(backbone, CLASSES, config, weight_decay=weight_decay)


def batch(rng, n=4):
    return (rng.normal(size=(n,) + SHAPE).astype("float32"),
            rng.integers(0, CLASSES, n).astype("int32"))


def block(features, c, width=WIDTH):
    return features[..., c * width:(c + 1) * width]


def test_last_is_one_block_per_class_fed_by_the_inner_stage():
    backbone = keras_models.get("resnet8", SHAPE, CLASSES, class_block_width=WIDTH)
    assert backbone.feature_shapes == {"inner": (6, 6, 32), "last": (3, 3, CLASSES * WIDTH)}
    assert keras_models.has_class_blocks(backbone)
    assert not keras_models.has_class_blocks(keras_models.get("resnet8", SHAPE, CLASSES))
    for c in range(CLASSES):  # each block reads the inner stage, not another block
        first_conv = backbone.get_layer(f"class{c}_block1_1_conv")
        assert first_conv.input.shape[-1] == 32
    bottleneck = keras_models.ResNet((32, 32, 3), 4, block="bottleneck",
                                     blocks_per_stage=(1, 2), stage_widths=(4, 8),
                                     class_block_width=3)
    assert bottleneck.feature_shapes["last"][-1] == 4 * 4 * 3  # 4x expansion per block


def test_each_block_depends_on_its_own_weights_only(rng):
    backbone = keras_models.get("resnet8", SHAPE, CLASSES, class_block_width=WIDTH)
    images = rng.normal(size=(2,) + SHAPE).astype("float32")
    before = backbone(images)["last"].numpy()
    for layer in backbone.layers:  # change every weight of class 1's blocks
        if layer.name.startswith("class1_"):
            for weight in layer.weights:
                weight.assign(weight + 0.5)
    after = backbone(images)["last"].numpy()
    for c in (0, 2):
        np.testing.assert_array_equal(block(after, c), block(before, c))
    assert not np.allclose(block(after, 1), block(before, 1))


def test_logit_of_a_class_reads_its_own_block_only(rng):
    model = plusplus()
    _, last = model.features(batch(rng)[0])
    logits = model.head(last).numpy()
    changed = last.numpy().copy()
    changed[..., :WIDTH] += rng.normal(size=changed[..., :WIDTH].shape)  # block 0 only
    new = model.head(tf.constant(changed)).numpy()
    np.testing.assert_allclose(new[:, 1:], logits[:, 1:], rtol=1e-6)
    assert not np.allclose(new[:, 0], logits[:, 0])
    # The block-diagonal kernel is the head: pooled features @ kernel + bias.
    pooled = last.numpy().mean(axis=(1, 2))
    dense = pooled @ model.classifier.kernel.numpy() + model.classifier.bias.numpy()
    np.testing.assert_allclose(logits, dense, rtol=1e-5, atol=1e-6)


def test_gradcam_on_the_concatenated_map_is_gradcam_on_the_class_block(rng):
    model = plusplus()
    images, labels = batch(rng)
    maps = attention_maps(model, images, labels, reading=GRADCAM_READING)
    features = tf.constant(model.features(images)[1])
    with tf.GradientTape() as tape:
        tape.watch(features)
        score = tf.reduce_sum(tf.gather(model.head(features), labels, batch_dims=1))
    gradients = tape.gradient(score, features).numpy()
    features = features.numpy()
    for b, c in enumerate(labels):
        others = np.delete(gradients[b], np.s_[c * WIDTH:(c + 1) * WIDTH], axis=-1)
        assert not others.any()  # the other blocks' channel weights are zero
        concatenated = ref.gradcam(features[b:b + 1], gradients[b:b + 1])
        own_block = ref.gradcam(block(features[b:b + 1], c), block(gradients[b:b + 1], c))
        np.testing.assert_allclose(concatenated, own_block, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(maps["target_last"][b], ref.normalize(own_block)[0],
                                   rtol=1e-4, atol=1e-6)


def test_weight_decay_on_the_head_like_the_dense_head():
    model = plusplus(weight_decay=0.1)
    kernel = model.classifier.block_kernel.numpy()
    head_penalty = [float(loss) for loss in model.classifier.losses]
    assert head_penalty == pytest.approx([0.05 * float((kernel ** 2).sum())])


def test_keras_file_round_trip(rng, tmp_path):
    model = plusplus(SFocusConfig(w_bw=1.0), weight_decay=1e-3)
    images, labels = batch(rng)
    path = str(tmp_path / "plusplus.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.classifier, keras_models.ClassBlockDense)
    assert loaded.backbone.class_block_width == WIDTH
    np.testing.assert_allclose(loaded.predict(images, verbose=0),
                               model.predict(images, verbose=0), rtol=1e-6)
    ours, theirs = (m.objective(images, labels) for m in (model, loaded))
    np.testing.assert_allclose(theirs["bw"], ours["bw"], rtol=1e-6)


@pytest.mark.slow
def test_mixed_precision_step_is_finite(rng):
    images, labels = batch(rng, 8)
    with dtype_policy("mixed_float16"):
        model = plusplus(SFocusConfig(w_bw=1.0))
        model.compile(optimizer=keras.optimizers.SGD(0.05))
    assert model.features(images)[1].dtype == "float16"
    history = model.fit(images, labels, batch_size=4, epochs=1, verbose=0).history
    for name in ("loss", "bw", "as_last", "ac"):
        assert np.isfinite(history[name]).all(), name


def test_bw_needs_class_blocks_and_blocks_need_classes():
    plain = keras_models.get("resnet8", SHAPE, CLASSES)
    with pytest.raises(ValueError, match="w_bw>0 needs a backbone with per-class last blocks"):
        SFocusModel(plain, CLASSES, SFocusConfig(w_bw=1.0))
    with pytest.raises(ValueError, match="class_block_width needs num_classes"):
        keras_models.get("resnet8", SHAPE, class_block_width=2)
    with pytest.raises(ValueError, match="class_block_width must be a positive integer"):
        keras_models.get("resnet8", SHAPE, CLASSES, class_block_width=0)
    with pytest.raises(ValueError, match="for the ResNets only, not for VGG 'vgg16'"):
        keras_models.get("vgg16", (16, 16, 1), CLASSES, class_block_width=2)
    with pytest.raises(ValueError, match="do not split into 3 equal class blocks"):
        keras_models.ClassBlockDense(3).build((None, 10))
    # Evaluation of a plain backbone reports no bw (there are no blocks to read).
    assert "bw" not in SFocusModel(plain, CLASSES).objective(*batch(np.random.default_rng(0)))


@pytest.mark.slow
def test_export_serves_the_class_block_model(rng, tmp_path):
    preset = data.get_preset("fashion_mnist")
    backbone = keras_models.get("resnet8", preset.image_size, 10, class_block_width=1)
    model = SFocusModel(backbone, 10)
    path = export_saved_model(model, preset, str(tmp_path / "plusplus"),
                              data.class_names("fashion_mnist"))
    served = tf.saved_model.load(path)
    images = rng.integers(0, 256, (3, 28, 28, 1), dtype=np.uint8)
    inputs = data.preprocess_for_serving(images, preset)
    out = served.signatures["attention"](images=tf.constant(images))
    want = compute_attention(model, inputs, maps=("target_last",))
    np.testing.assert_array_equal(out["target_class"], want["target_class"])
    resized = tf.image.resize(want["target_last"][..., None], (28, 28))[..., 0]
    np.testing.assert_allclose(out["target_map"], resized, rtol=1e-4, atol=1e-5)
    probabilities = served.signatures["serving_default"](images=tf.constant(images))
    np.testing.assert_allclose(probabilities["probabilities"],
                               tf.nn.softmax(model(inputs)), rtol=1e-5, atol=1e-6)
