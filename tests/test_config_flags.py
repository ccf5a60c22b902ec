"""One definition per training field: flags, flags -> config and config -> flags."""

import dataclasses

import pytest
from absl import flags

from sfocus_tf.configs import recipes, schedules
from sfocus_tf.modeling import terms
from sfocus_tf.common.config_flags import (config_from_flags, config_to_flags, define_flags,
                                    flag_fields)
from sfocus_tf.configs.train_config import APPLICATION_FIELDS, TrainConfig

FIELDS = list(flag_fields(TrainConfig))
# The fields of --model=application are set together with it.
APPLICATION = TrainConfig(model="application", application="MobileNetV2",
                          inner_layer="block_13_expand_relu")


def parsed(lines, cls=TrainConfig) -> flags.FlagValues:
    flag_values = flags.FlagValues()
    define_flags(cls, flag_values)
    flag_values(["prog", *lines])
    return flag_values


def other_value(item):
    """A valid value of ``item``'s field that is not its default."""
    default = item.field.default
    if item.name == "model":
        return "resnet8"  # "application" needs its own fields
    if item.choices is not None:
        return next(choice for choice in item.choices if choice != default)
    if item.kind is bool:
        return not default
    if item.kind is tuple:
        return (3, 7)
    if item.kind is str:
        return "/data/elsewhere"
    step = 3 if item.kind is int else 0.125
    return step if default is None else default + step


def with_value(config, path, value):
    if len(path) == 1:
        return dataclasses.replace(config, **{path[0]: value})
    return dataclasses.replace(
        config, **{path[0]: with_value(getattr(config, path[0]), path[1:], value)})


@pytest.mark.parametrize("item", FIELDS, ids=[item.name for item in FIELDS])
def test_flags_to_config_to_flags_is_the_identity(item):
    base = APPLICATION if item.name in APPLICATION_FIELDS else TrainConfig()
    config = with_value(base, item.path, other_value(item))
    lines = config_to_flags(config)
    assert any(line.startswith((f"--{item.name}=", f"--{item.name}", f"--no{item.name}"))
               for line in lines)
    back = config_from_flags(TrainConfig(), parsed(lines))
    assert back == config
    assert config_to_flags(back) == lines


def test_names_aliases_and_derived_fields():
    names = [item.name for item in FIELDS]
    assert len(names) == len(set(names))  # nested fields must not shadow others
    assert "lr" in names and "learning_rate" not in names
    assert "sigma" in names and "sfocus" not in names
    assert "multi_label" not in names  # set from the dataset by resolve()
    assert config_from_flags(TrainConfig(), parsed(["--lr=0.05"])).learning_rate == 0.05


def test_only_flags_the_user_set_override_the_recipe():
    recipe = recipes.get("fashion_mnist_cpu")
    config = config_from_flags(recipe, parsed(["--lr=0.05", "--nosecond_order"]))
    assert config == recipe.replace(learning_rate=0.05,
                                    sfocus=recipe.sfocus.replace(second_order=False))
    assert config.epochs == 4 and config.model == "resnet8"  # the recipe's, not defaults


def test_a_bad_value_names_the_flag_and_the_allowed_values():
    with pytest.raises(flags.IllegalFlagValueError, match="--schedule=weekly.*cosine"):
        parsed(["--schedule=weekly"])


def test_recipes_are_valid_configs_chosen_by_name():
    assert "fashion_mnist_demo" in recipes.names() and "default" in recipes.names()
    for name in recipes.names():
        assert isinstance(recipes.get(name), TrainConfig), name
    assert recipes.get("fashion_mnist_demo") == TrainConfig(
        dataset="fashion_mnist", model="resnet8", epochs=4, learning_rate=0.1,
        schedule="cosine")
    with pytest.raises(ValueError, match="unknown recipe 'nope'; valid: caltech256"):
        recipes.get("nope")


def test_every_dataset_has_a_default_schedule():
    from sfocus_tf import data
    for name in data.names():
        schedule = schedules.dataset_schedule(name)  # raises for a dataset without one
        if name not in ("caltech256", "image_folder"):  # their presets read the folder
            assert TrainConfig(dataset=name).resolve().epochs == schedule["epochs"], name
    assert TrainConfig(dataset="cifar10", epochs=3).resolve().epochs == 3  # explicit wins


def test_each_weight_flag_is_helped_by_its_terms_description():
    flag_values = parsed([])
    weight_flags = sorted(name for name in flag_values if name.startswith("w_"))
    assert weight_flags == sorted(terms.WEIGHT_FIELDS)  # every w_* weights a term
    for term in terms.TERMS:
        if term.weight:
            assert term.description in flag_values[term.weight].help, term.weight
