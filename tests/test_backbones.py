"""Backbones: parameter counts, feature shapes, registry errors, serialisation."""

import functools
import inspect

import keras
import numpy as np
import pytest

import keras_models

MOBILENET = {"application": "MobileNetV2", "inner_layer": "block_13_expand_relu"}


def build(name, input_shape=(32, 32, 3), num_classes=10, **kwargs):
    """One instance per argument set: big models are built once per session."""
    return _build(name, tuple(input_shape), num_classes, tuple(sorted(kwargs.items())))


@functools.lru_cache(maxsize=None)
def _build(name, input_shape, num_classes, kwargs):
    return keras_models.get(name, input_shape, num_classes, **dict(kwargs))


def trainable_params(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def with_head(model, num_classes):
    """Trainable parameters plus a GAP + dense head, counted like PyTorch
    (BN moving statistics are buffers, not parameters)."""
    k = model.feature_shapes["last"][-1]
    return trainable_params(model) + k * num_classes + num_classes


def vgg_bn_params(convs_per_block):
    """(trainable, total) of conv3x3(+bias) + BN stacks: BN has gamma and beta
    (trainable) plus moving mean and variance."""
    trainable = total = 0
    c_in = 3
    for n, width in zip(convs_per_block, (64, 128, 256, 512, 512)):
        for _ in range(n):
            conv = 9 * c_in * width + width
            trainable += conv + 2 * width
            total += conv + 4 * width
            c_in = width
    return trainable, total


def test_names():
    assert set(keras_models.names()) >= {"resnet20", "resnet56", "resnet110", "resnet18_cifar",
                                         "resnet18", "resnet50", "vgg16", "vgg19", "application"}


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="resnet20.*vgg16|vgg16.*resnet20"):
        keras_models.get("resnet21", (32, 32, 3))


def test_resnet20_is_027m():
    n = with_head(build("resnet20"), 10)
    print("resnet20 + 10-class head:", n)
    assert 260_000 <= n <= 280_000
    assert n == 269_722  # option-A shortcuts, as He et al. and akamaster's PyTorch code


def test_option_b_shortcuts_add_two_projections():
    a = trainable_params(build("resnet20"))
    b = trainable_params(build("resnet20", shortcut="B"))
    # 1x1 convs 16->32 and 32->64 (no bias) with BN gamma/beta.
    assert b - a == 16 * 32 + 32 * 64 + 2 * (32 + 64)


@pytest.mark.parametrize("name, num_classes, expected", [
    ("resnet56", 10, 853_018),
    ("resnet110", 10, 1_727_962),
    ("resnet18_cifar", 10, 11_173_962),  # kuangliu/pytorch-cifar ResNet18
    ("resnet18", 1000, 11_689_512),      # torchvision resnet18
    ("resnet50", 1000, 25_557_032),      # torchvision resnet50
])
def test_resnet_param_counts(name, num_classes, expected):
    # The backbone does not depend on num_classes: reuse the shape tests' builds.
    assert with_head(build(name), num_classes) == expected


@pytest.mark.parametrize("name, convs", [("vgg16", (2, 2, 3, 3, 3)), ("vgg19", (2, 2, 4, 4, 4))])
def test_vgg_bn_param_counts(name, convs):
    model = build(name)
    assert (trainable_params(model), model.count_params()) == vgg_bn_params(convs)


@pytest.mark.parametrize("name, input_shape, inner, last", [
    ("resnet20", (28, 28, 1), (14, 14, 32), (7, 7, 64)),
    ("resnet20", (32, 32, 3), (16, 16, 32), (8, 8, 64)),
    ("resnet56", (32, 32, 3), (16, 16, 32), (8, 8, 64)),
    ("resnet18_cifar", (32, 32, 3), (8, 8, 256), (4, 4, 512)),
    ("resnet18", (32, 32, 3), (2, 2, 256), (1, 1, 512)),
    ("resnet18", (64, 64, 3), (4, 4, 256), (2, 2, 512)),
    ("resnet50", (32, 32, 3), (2, 2, 1024), (1, 1, 2048)),
    ("vgg16", (32, 32, 3), (4, 4, 512), (2, 2, 512)),
    ("vgg19", (28, 28, 1), (3, 3, 512), (1, 1, 512)),
    ("application", (32, 32, 3), (2, 2, 576), (1, 1, 1280)),
])
def test_feature_shapes(name, input_shape, inner, last):
    kwargs = MOBILENET if name == "application" else {}
    model = build(name, input_shape, **kwargs)
    assert model.feature_shapes == {"inner": inner, "last": last}
    assert model.image_shape == input_shape


def torch_window_op(x, size, stride, padding, *, reduce, pad_value=0.0):
    """PyTorch's strided window ops on [B, H, W, C]: ``padding`` on every side; output
    ``i`` reads inputs ``stride * i - padding ... + size - 1`` (centred on ``stride * i``
    for ``padding = size // 2``). ``reduce(patches)`` gets [size * size, B, h, w, C]."""
    xp = np.pad(x, [(0, 0), (padding, padding), (padding, padding), (0, 0)],
                constant_values=pad_value)
    out_h, out_w = ((n + 2 * padding - size) // stride + 1 for n in x.shape[1:3])
    return reduce(np.stack([xp[:, i:i + stride * out_h:stride, j:j + stride * out_w:stride]
                            for i in range(size) for j in range(size)]))


def torch_conv(x, kernel, stride, padding):
    size = kernel.shape[0]
    taps = kernel.reshape(size * size, *kernel.shape[2:])
    return torch_window_op(x, size, stride, padding,
                           reduce=lambda p: np.einsum("tbhwc,tco->bhwo", p, taps))


def torch_max_pool(x, size, stride, padding):
    return torch_window_op(x, size, stride, padding, reduce=lambda p: p.max(axis=0),
                           pad_value=-np.inf)


def between(model, source, target):
    """The part of ``model`` from layer ``source``'s output to ``target``'s output."""
    tensor = model.input if source == "images" else model.get_layer(source).output
    return keras.Model(tensor, model.get_layer(target).output)


@pytest.mark.parametrize("name, source, target, stride, padding", [
    ("resnet20", "stage1_block3_out", "stage2_block1_1_conv", 2, 1),
    ("resnet18_cifar", "stage1_block2_out", "stage2_block1_1_conv", 2, 1),
    ("resnet18_cifar", "stage1_block2_out", "stage2_block1_proj_conv", 2, 0),
    ("resnet18", "images", "stem_conv", 2, 3),
    ("resnet18", "stem_relu", "stem_pool", 2, 1),
    ("resnet18", "stem_pool", "stage1_block1_1_conv", 1, 1),
    ("resnet18", "stage1_block2_out", "stage2_block1_1_conv", 2, 1),
    ("resnet50", "stage2_block1_1_relu", "stage2_block1_2_conv", 2, 1),
])
def test_strided_layers_pad_like_pytorch(name, source, target, stride, padding, rng):
    # Even input sizes: where TF's "same" pads 0 before / 1 after (2i+1 centres).
    part = between(build(name), source, target)
    x = rng.normal(size=(2, *part.input.shape[1:])).astype("float32")
    if target.endswith("pool"):
        x, want = np.abs(x), torch_max_pool(np.abs(x), 3, stride, padding)  # after a ReLU
    else:
        kernel = part.get_layer(target).kernel.numpy()
        want = torch_conv(x, kernel, stride, padding)
    assert x.shape[1] % 2 == 0
    np.testing.assert_allclose(part(x), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name, source, shortcut", [
    ("resnet20", "stage1_block3_out", "stage2_block1_pad"),
    ("resnet18_cifar", "stage1_block2_out", "stage2_block1_proj_conv"),
])
def test_strided_branch_and_shortcut_read_the_same_pixel(name, source, shortcut):
    model = build(name)
    block_input = model.get_layer(source).output
    part = keras.Model(block_input, [model.get_layer("stage2_block1_1_conv").output,
                                     model.get_layer(shortcut).output])
    x = np.zeros((1, *block_input.shape[1:]), "float32")
    x[0, 6, 10, 3] = 1.0  # input pixel (2i, 2j) for output (3, 5)
    branch, short = (np.asarray(t) for t in part(x))
    assert set(zip(*np.nonzero(short)[1:3])) == {(3, 5)}
    kernel = model.get_layer("stage2_block1_1_conv").kernel.numpy()
    # The branch sees the impulse at the centre tap of its (3, 5) window.
    np.testing.assert_allclose(branch[0, 3, 5], kernel[1, 1, 3], rtol=1e-6, atol=1e-7)


def test_forward_pass_gives_feature_dict():
    model = build("resnet20", (28, 28, 1))
    out = model(np.zeros((2, 28, 28, 1), "float32"), training=False)
    assert set(out) == {"inner", "last"}
    assert tuple(out["inner"].shape) == (2, 14, 14, 32)
    assert tuple(out["last"].shape) == (2, 7, 7, 64)
    assert float(keras.ops.min(out["last"])) >= 0.0  # after the final ReLU


def test_layer_settings():
    layers = build("resnet20").layers
    bns = [la for la in layers if isinstance(la, keras.layers.BatchNormalization)]
    convs = [la for la in layers if isinstance(la, keras.layers.Conv2D)]
    assert bns and all(b.momentum == 0.9 and b.epsilon == 1e-5 for b in bns)
    assert all(type(c.kernel_initializer).__name__ == "HeNormal" for c in convs)
    assert not any(c.use_bias for c in convs)


def test_application_errors_name_valid_choices():
    with pytest.raises(ValueError, match="valid layer names:.*block_13_expand_relu"):
        keras_models.get("application", (32, 32, 3), application="MobileNetV2",
                         inner_layer="block_99")
    with pytest.raises(ValueError, match="last_layer='nope'.*out_relu"):
        keras_models.get("application", (32, 32, 3), last_layer="nope", **MOBILENET)
    with pytest.raises(ValueError, match="valid names:.*MobileNetV2.*ResNet50"):
        keras_models.get("application", (32, 32, 3), application="MobileNetV9",
                         inner_layer="x")


@pytest.mark.parametrize("cls", [keras_models.CifarResNet, keras_models.ResNet,
                                 keras_models.VGG, keras_models.ApplicationBackbone])
def test_get_config_is_exactly_the_constructor_arguments(cls):
    params = set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}
    samples = {keras_models.CifarResNet: ("resnet20", {}),
               keras_models.ResNet: ("resnet18", {}),
               keras_models.VGG: ("vgg16", {}),
               keras_models.ApplicationBackbone: ("application", MOBILENET)}
    name, kwargs = samples[cls]
    model = build(name, **kwargs)
    assert type(model) is cls
    assert set(model.get_config()) == params | {"name", "trainable"}


SMALL = {  # cheap instances of every class; the builders only fill in these arguments
    "cifar": lambda: keras_models.get("resnet20", (16, 16, 3), 10, weight_decay=1e-4),
    "bottleneck": lambda: keras_models.ResNet((32, 32, 3), 5, block="bottleneck",
                                              blocks_per_stage=(1, 1), stage_widths=(4, 8)),
    "vgg": lambda: keras_models.VGG((16, 16, 1), convs_per_block=(1, 2),
                                    block_widths=(4, 8), dtype="float64"),
    "application": lambda: keras_models.get("application", (32, 32, 3), **MOBILENET),
    "class_blocks": lambda: keras_models.get("resnet8", (16, 16, 1), 3, class_block_width=2),
    "class_blocks_bottleneck": lambda: keras_models.ResNet(
        (32, 32, 3), 3, block="bottleneck", blocks_per_stage=(1, 1), stage_widths=(4, 8),
        class_block_width=2),
}


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_serialize_round_trip_rebuilds_architecture(kind):
    model = SMALL[kind]()
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert type(clone) is type(model)
    assert clone.get_config() == model.get_config()
    # Input layers are auto-named (input_layer_N); every other name is fixed.
    assert [(la.name, type(la)) for la in clone.layers[1:]] == \
        [(la.name, type(la)) for la in model.layers[1:]]
    assert [w.shape for w in clone.weights] == [w.shape for w in model.weights]
    assert len(clone.losses) == len(model.losses)


def test_keras_file_round_trip_gives_identical_outputs(tmp_path):
    model = keras_models.get("resnet20", (16, 16, 3), 10, weight_decay=5e-4)
    rng = np.random.default_rng(0)
    # Non-default BN statistics, so the test sees them restored too.
    for w in model.non_trainable_weights:
        w.assign(rng.uniform(0.5, 1.5, w.shape).astype(w.dtype))
    path = tmp_path / "resnet20.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, keras_models.CifarResNet)
    x = rng.normal(size=(2, 16, 16, 3)).astype("float32")
    want, got = model(x, training=False), loaded(x, training=False)
    for key in ("inner", "last"):
        np.testing.assert_array_equal(np.asarray(got[key]), np.asarray(want[key]))
    assert len(loaded.losses) == len(model.losses) > 0


def test_weight_decay_is_pytorch_style_l2_on_kernels():
    assert build("resnet20").losses == []
    wd = 5e-4
    model = build("resnet20", weight_decay=wd)
    kernels = [la.kernel for la in model.layers if isinstance(la, keras.layers.Conv2D)]
    assert len(model.losses) == len(kernels) == 19
    # Keras' L2(l) adds l * sum(w**2); we use l = wd / 2 so the gradient is wd * w.
    expected = wd / 2 * sum(float(np.sum(np.square(k.numpy()))) for k in kernels)
    assert float(sum(model.losses)) == pytest.approx(expected, rel=1e-5)


def test_weight_decay_on_application_kernels():
    assert build("application", **MOBILENET).losses == []
    model = keras_models.get("application", (32, 32, 3), weight_decay=1e-4, **MOBILENET)
    assert len(model.losses) == 52  # 35 convs + 17 depthwise convs


def test_float64_backbone():
    model = keras_models.get("resnet20", (16, 16, 3), 10, dtype="float64")
    assert {w.dtype for w in model.weights} == {"float64"}
    out = model(np.ones((1, 16, 16, 3)), training=False)
    assert {keras.backend.standardize_dtype(v.dtype) for v in out.values()} == {"float64"}


@pytest.mark.parametrize("name, kwargs, layer", [
    ("resnet8", {}, "stage2_block1_out"),
    ("application", MOBILENET, "block_13_expand_relu"),
])
def test_unknown_spatial_size_is_refused_naming_backbone_and_layer(name, kwargs, layer):
    from sfocus_tf import SFocusModel
    backbone = keras_models.get(name, (None, None, 3), 4, **kwargs)
    with pytest.raises(ValueError, match=rf"backbone '{backbone.name}': feature map 'inner' "
                                         rf"\(layer '{layer}'\) has an unknown spatial size"):
        SFocusModel(backbone, 4)


def test_unknown_input_size_is_fine_when_the_feature_maps_have_one():
    from sfocus_tf import SFocusModel, attention_maps
    images = keras.Input((None, None, 3))
    x = keras.layers.Resizing(16, 16)(images)
    inner = keras.layers.Conv2D(4, 3, padding="same", name="inner")(x)
    last = keras.layers.Conv2D(4, 3, strides=2, name="last")(inner)
    model = SFocusModel(keras_models.Backbone(images, inner, last), 3)
    maps = attention_maps(model, np.ones((2, 20, 24, 3), "float32"))
    assert maps["target_last"].shape == (2, 7, 7)
