import pytest

from sfocus_tf import SFocusConfig, SFocusModel
from tiny import tiny_backbone


def test_defaults_follow_the_spec():
    config = SFocusConfig()
    assert (config.sigma, config.omega, config.theta) == (0.55, 100.0, 0.8)
    assert (config.w_as_last, config.w_as_in, config.w_ac) == (1.0, 1.0, 1.0)
    # chosen by the validation study (docs/default_study.md): the public reading
    assert (config.gradcam_weights, config.second_order, config.normalize) == (
        "relu_mean", False, "max")
    assert (config.mask_gradient, config.as_layers, config.ac_mask_source) == (False, "both", "last")
    assert (config.ac_clamp, config.multi_label) == (False, False)
    assert (config.map_activation, config.class_score) == ("relu", "logit")
    assert (config.map_temperature, config.ac_mask) == ("logit", "resized_mask")
    assert (config.warmup_steps, config.ramp_steps) == (0, 0)
    assert config.uses_attention and not config.baseline().uses_attention


@pytest.mark.parametrize("field, value, allowed", [
    ("gradcam_weights", "max", "'mean', 'relu_mean'"),
    ("normalize", "l2", "'max', 'minmax', 'none'"),
    ("as_layers", "inner", "'both', 'last'"),
    ("ac_mask_source", "first", "'last', 'inner'"),
    ("second_order", "yes", "True, False"),
])
def test_invalid_choice_names_field_and_allowed_values(field, value, allowed):
    with pytest.raises(ValueError) as error:
        SFocusConfig(**{field: value})
    assert f"SFocusConfig.{field}" in str(error.value)
    assert allowed in str(error.value)


@pytest.mark.parametrize("field, value", [
    ("w_ac", -1.0), ("sigma", 1.5), ("omega", 0.0), ("theta", float("nan")), ("w_as_in", "1")])
def test_out_of_range_numbers_are_rejected(field, value):
    with pytest.raises(ValueError, match=f"SFocusConfig.{field}"):
        SFocusConfig(**{field: value})


def test_dict_round_trip_and_unknown_fields():
    config = SFocusConfig(sigma=0.4, w_as_in=0.0, normalize="minmax", ac_clamp=True)
    assert SFocusConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="Unknown SFocusConfig field.*sigmaa"):
        SFocusConfig.from_dict({"sigmaa": 0.5})


def test_which_maps_training_needs():
    def maps(**fields):
        model = SFocusModel(tiny_backbone(), 5, SFocusConfig(**fields))
        return model._maps_needed(training=True)

    assert maps(w_as_in=0.0, w_ac=0.0) == ("target_last", "confusing_last")
    assert maps(as_layers="last", w_ac=0.0) == ("target_last", "confusing_last")
    # consistency needs the inner target map, and its mask's source
    assert maps(as_layers="last") == ("target_last", "confusing_last", "target_inner")
    assert maps(w_as_last=0.0, w_as_in=0.0, ac_mask_source="inner") == ("target_inner",)
    assert maps(w_as_last=0.0, w_as_in=0.0, w_ac=0.0) == ()
    assert SFocusConfig(as_layers="last").term_weights["as_inner"] == 0.0
    assert not SFocusConfig().baseline().uses_attention
    assert SFocusConfig(w_as_last=0.0, w_ac=0.0).uses_attention


def test_saved_configs_without_a_newer_field_keep_what_they_meant():
    from sfocus_tf import SFocusModel
    from sfocus_tf.modeling.sfocus_config import FIELDS_ADDED_SINCE
    from tiny import tiny_backbone
    old = SFocusConfig(map_activation="softmax").to_dict()
    for name in FIELDS_ADDED_SINCE:
        del old[name]
    assert SFocusConfig.from_dict(old) == SFocusConfig(map_activation="softmax")  # today's
    saved = SFocusConfig.from_saved(old)
    assert {name: getattr(saved, name) for name in FIELDS_ADDED_SINCE} == FIELDS_ADDED_SINCE
    model = SFocusModel(tiny_backbone(), 5, SFocusConfig(map_temperature="spatial_std"))
    config = model.get_config()
    del config["config"]["map_temperature"]  # as a model.keras written before the field
    assert SFocusModel.from_config(config).sfocus_config.map_temperature == "logit"
