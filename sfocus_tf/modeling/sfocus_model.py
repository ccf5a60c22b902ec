"""SFocusModel: a Keras classifier trained with the SFOCUS objective."""

from __future__ import annotations

import keras
import tensorflow as tf

import keras_models
from keras_models import keras_compat

from sfocus_tf.modeling import losses
from sfocus_tf.modeling.gradcam import MAP_NAMES, compute_attention, full_precision
from sfocus_tf.modeling.sfocus_config import SFocusConfig
from sfocus_tf.modeling.fit_metrics import LOSS_METRICS, REGULARIZATION, make_metrics
from sfocus_tf.modeling.terms import ATTENTION_TERMS, FEATURE_TERMS, TERMS
from sfocus_tf.modeling.input_checks import (check_backbone, check_batch_norm, check_images,
                                  check_labels)


def resolve_jit_compile(jit_compile) -> bool:
    """Keras' ``"auto"``: XLA on when a GPU is visible, off on CPU-only machines
    (docs/benchmarks.md measures both on CPU)."""
    if jit_compile == "auto":
        return bool(tf.config.list_physical_devices("GPU"))
    if not isinstance(jit_compile, bool):
        raise ValueError(f"jit_compile must be True, False or 'auto'; got {jit_compile!r}")
    return jit_compile


@keras.saving.register_keras_serializable(package="sfocus_tf")
class SFocusModel(keras.Model):
    """A backbone, a GAP + dense head, and the SFOCUS training objective.

    ``backbone`` maps images to ``{"inner": F_in, "last": F_last}`` (see
    ``keras_models.Backbone``). ``compile(optimizer=...)`` needs no loss: the
    model minimises ``CE + w_bw*L_BW + s(t) (w_as_last*L_AS_last + w_as_in*L_AS_in +
    w_ac*L_AC) + sum(model.losses)`` (the terms: ``sfocus_tf.modeling.terms``). ``weight_decay``
    regularises the head's kernel with the convention of ``keras_models`` (gradient
    ``weight_decay * w``).

    The one extension for the "++" variant: a backbone with per-class last blocks
    (``keras_models.has_class_blocks``) gets the class-block head
    (``keras_models.ClassBlockDense``: logit c reads block c only), whose ``kernel`` is
    the equivalent block-diagonal dense kernel, so attention, export and evaluation
    read it like the dense head's. Only such a backbone can weight ``L_BW``.
    """

    def __init__(self, backbone, num_classes=None, config=None, weight_decay=0.0, **kwargs):
        super().__init__(**kwargs)
        image_shape = check_backbone(backbone)
        _check_feature_sizes(backbone)
        num_classes = _resolve_num_classes(backbone, num_classes)
        if config is None:
            config = SFocusConfig()
        elif isinstance(config, dict):
            config = SFocusConfig.from_dict(config)
        check_batch_norm(backbone, config)
        _check_class_block_terms(backbone, config)
        self.backbone = backbone
        self.num_classes = num_classes
        self.sfocus_config = config
        self.image_shape = image_shape
        self.pool = keras.layers.GlobalAveragePooling2D(name="pool")
        self.weight_decay = float(weight_decay)
        self.classifier = _classifier(backbone, num_classes, self.weight_decay)
        self._trackers = make_metrics(num_classes, config.multi_label)
        self._step_xla = False
        self.build((None,) + image_shape)

    def build(self, input_shape):
        last_channels = self.backbone.output["last"].shape[-1]
        self.classifier.build((None, last_channels))
        self.built = True

    # -- the network -------------------------------------------------------

    def features(self, images, training=False):
        """``(F_in, F_last)`` for a batch of images [B, H, W, C]."""
        outputs = self.backbone(check_images(images, self.image_shape), training=training)
        return outputs["inner"], outputs["last"]

    def head(self, last):
        """Logits [B, N] (float32 under mixed precision) from the last feature map."""
        return full_precision(self.classifier(self.pool(last)))

    def call(self, images, training=None):
        _, last = self.features(images, training=training)
        return self.head(last)

    # -- the objective -----------------------------------------------------

    def objective(self, images, labels, training=False):
        """The loss terms of docs/method.md for one batch: a dict with ``loss``, the
        terms that were computed (``ce``, ``as_last``, ``as_inner``, ``ac``; batch
        means), ``l2`` (the sum of ``model.losses``, where the model has any), the
        shares of empty last-layer maps (``empty_target``, ``empty_confusing``) where
        those maps were computed, and ``logits``. Training
        computes only the terms with a non-zero weight, scaled by the attention
        warm-up; evaluation computes them all, as metrics, at full weight. Inputs are
        checked by shape only; ``fit``/``evaluate`` also check label values (outside
        XLA)."""
        cfg = self.sfocus_config
        labels = check_labels(labels, self.num_classes, cfg.multi_label, check_values=False)
        computed = self._terms_computed(training)
        maps = self._maps_needed(training)
        if maps:
            attention = compute_attention(self, images, labels, training=training, maps=maps)
            logits, last = attention["logits"], attention["last_features"]
        else:
            _, last = self.features(images, training=training)
            attention, logits = {}, self.head(last)
        terms = {"ce": self._cross_entropy(labels, logits),
                 **self._feature_terms(last, labels, logits.dtype, computed),
                 **self._attention_terms(attention, computed)}
        # L = CE + w_bw L_BW + s(t) (w_as_last L_AS_last + w_as_in L_AS_in + w_ac L_AC)
        #     + model.losses
        weights = cfg.term_weights
        loss = terms["ce"]
        for term in FEATURE_TERMS:
            if term in computed and weights[term.name] > 0:
                loss += weights[term.name] * terms[term.name]
        weighted = [weights[term.name] * terms[term.name] for term in ATTENTION_TERMS
                    if weights[term.name] > 0]
        if weighted:
            loss += tf.cast(self._attention_scale(training), loss.dtype) * tf.add_n(weighted)
        regularization = self.losses  # each read recomputes every regulariser: read once
        if regularization:  # logged as its own term, so the logged terms add up to loss
            terms[REGULARIZATION] = tf.add_n([tf.cast(reg, loss.dtype)
                                              for reg in regularization])
            loss += terms[REGULARIZATION]
        return dict(terms, **self._empty_shares(attention), loss=loss, logits=logits)

    def _attention_scale(self, training):
        """``s(t)``: in training, the warm-up factor of the current optimizer step;
        evaluation reports the terms at full weight."""
        cfg = self.sfocus_config
        if not training or not (cfg.warmup_steps or cfg.ramp_steps):
            return 1.0
        return cfg.attention_scale(self.optimizer.iterations)

    def _empty_shares(self, attention):
        """Shares of the batch's last-layer maps that mark no position: a map switched
        off everywhere is the cheap way to meet separability, so it is watched. The
        map of a class an example does not have (see ``_has_class``) is not counted."""
        normalize = self.sfocus_config.normalize
        return {f"empty_{role}": tf.reduce_mean(
                    _has_class(attention, role)
                    * losses.empty_maps(attention[f"{role}_last"], normalize))
                for role in ("target", "confusing") if f"{role}_last" in attention}

    def _terms_computed(self, training):
        """Evaluation reports every term the backbone allows (L_BW needs class
        blocks); training computes only the weighted ones."""
        weights = self.sfocus_config.term_weights
        blocks = keras_models.has_class_blocks(self.backbone)
        return tuple(term for term in TERMS if term.weight
                     and (blocks or not term.class_blocks)
                     and (not training or weights[term.name] > 0))

    def _maps_needed(self, training):
        """Evaluation computes every map (they are measured); training the maps of
        the terms it computes."""
        if not training:
            return MAP_NAMES
        needed = [name for term in self._terms_computed(training)
                  for name in term.maps_for(self.sfocus_config)]
        return tuple(dict.fromkeys(needed))

    def _feature_terms(self, last, labels, dtype, computed):
        """Batch means of the ``computed`` terms read off ``F_last`` (L_BW). Multi-label:
        the positive labels' blocks against the negatives' (see ``losses``)."""
        if not any(term in computed for term in FEATURE_TERMS):
            return {}
        target = (tf.cast(labels, dtype) if self.sfocus_config.multi_label
                  else tf.one_hot(labels, self.num_classes, dtype=dtype))
        bw = losses.black_white_loss(class_blocks=tf.cast(last, dtype), target=target)
        return {"bw": tf.reduce_mean(bw)}

    def _attention_terms(self, attention, computed):
        """Batch means of the attention terms ``computed`` (rows of ``terms.TERMS``).
        A multi-label example with no positive label (no target) adds 0 to
        every term, one with no negative label (no confusing class) 0 to separability."""
        if not any(term in ATTENTION_TERMS for term in computed):
            return {}
        cfg = self.sfocus_config
        masks = {layer: self._mask(attention[f"target_{layer}"])
                 for layer in ("last", "inner") if f"target_{layer}" in attention}
        has_target = _has_class(attention, "target")
        has_both = has_target * _has_class(attention, "confusing")

        def separability(layer):
            return has_both * losses.separability_loss(
                target_map=attention[f"target_{layer}"],
                confusing_map=attention[f"confusing_{layer}"], mask=masks[layer])

        def consistency():
            return has_target * losses.consistency_loss(
                inner_target_map=attention["target_inner"],
                last_mask=self._consistency_mask(attention, masks), theta=cfg.theta,
                clamp=cfg.ac_clamp)

        per_example = {"as_last": lambda: separability("last"),
                       "as_inner": lambda: separability("inner"), "ac": consistency}
        return {term.name: tf.reduce_mean(per_example[term.name]())
                for term in computed if term in ATTENTION_TERMS}

    def _consistency_mask(self, attention, masks):
        """The mask of ``L_AC``: the ``ac_mask_source`` layer's, or with ``ac_mask=
        "resized_map"`` the soft mask of the last-layer map upsampled to the inner size."""
        cfg = self.sfocus_config
        if cfg.ac_mask_source == "inner" or cfg.ac_mask == "resized_mask":
            return masks[cfg.ac_mask_source]
        mask = losses.consistency_mask(attention["target_last"],
                                       attention["target_inner"].shape[1:3],
                                       sigma=cfg.sigma, omega=cfg.omega)
        return mask if cfg.mask_gradient else tf.stop_gradient(mask)

    def _mask(self, target_map):
        cfg = self.sfocus_config
        mask = losses.soft_mask(target_map, cfg.sigma, cfg.omega)
        return mask if cfg.mask_gradient else tf.stop_gradient(mask)

    def _cross_entropy(self, labels, logits):
        if self.sfocus_config.multi_label:
            per_example = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
                labels=tf.cast(labels, logits.dtype), logits=logits), axis=-1)
        else:
            per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=labels, logits=logits)
        return tf.reduce_mean(per_example)

    # -- Keras training hooks ----------------------------------------------

    def compile(self, optimizer="adam", *, loss=None, jit_compile="auto", **kwargs):
        """Like ``keras.Model.compile``, without a loss (the model has its own).

        ``jit_compile`` XLA-compiles the per-replica work (forward, attention,
        gradients); the optimizer update and label checks stay outside XLA, which
        keeps it usable under MirroredStrategy (keras-team/keras#18716) and keeps
        the label checks (XLA drops asserts).
        """
        if loss is not None:
            raise ValueError("SFocusModel has its own objective (SFocusConfig); "
                             "compile() takes no loss argument")
        self._step_xla = resolve_jit_compile(jit_compile)
        super().compile(optimizer=optimizer, jit_compile=False, **kwargs)
        keras_compat.record_compile_argument(self, "jit_compile", jit_compile)
        self._gradients_step = self._maybe_xla(self._loss_and_gradients)
        self._eval_step = self._maybe_xla(lambda x, y: self.objective(x, y, training=False))

    def compile_from_config(self, config):
        # Keras skips compile() on load for models that override it; ours is safe.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)  # so its state can load

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):  # keras_compat
        # Under a tf.distribute strategy Keras builds what is left to build from a
        # batch of an extra iterator over the training data. That iterator draws the
        # seeds of the shuffle and augmentation passes it reads, which shifts the
        # stream the training iterator then sees (a resumed run could not replay it).
        # The model is built here at construction; with its optimizer built too
        # (``training.build.compiled_model``), nothing is left to build.
        if iterator is not None and self.optimizer is not None and self.optimizer.built:
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    @property
    def xla_compiled(self) -> bool:
        """Whether the training and evaluation steps run under XLA."""
        return self._step_xla

    def _maybe_xla(self, fn):
        return tf.function(fn, jit_compile=True) if self._step_xla else fn

    def _loss_and_gradients(self, images, labels):
        with tf.GradientTape() as tape:
            terms = self.objective(images, labels, training=True)
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            # Each replica holds 1/replicas of the global batch; the all-reduce sums.
            scaled = self.optimizer.scale_loss(terms["loss"] / replicas)
        return terms, tape.gradient(scaled, self.trainable_variables)

    def train_step(self, data):
        images, labels = self._unpack(data)
        terms, gradients = self._gradients_step(images, labels)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        # Replicas updated their BatchNorm statistics from different slices; equal
        # copies make validation and evaluate under the strategy use the statistics
        # that are saved (outside the XLA step: it is an all-reduce).
        keras_models.synchronize_moving_statistics(self)
        return self._record(terms, labels)

    def test_step(self, data):
        images, labels = self._unpack(data)
        return self._record(self._eval_step(images, labels), labels)

    def predict_step(self, data):
        images = data[0] if isinstance(data, (tuple, list)) else data
        return self(images, training=False)

    def _unpack(self, data):
        if not isinstance(data, (tuple, list)) or len(data) < 2:
            raise ValueError("SFocusModel.fit/evaluate expect (images, labels) batches")
        images = check_images(data[0], self.image_shape)
        labels = check_labels(data[1], self.num_classes, self.sfocus_config.multi_label)
        return images, labels

    @property
    def metrics(self):
        return list(self._trackers.values())

    def _record(self, terms, labels):
        batch = tf.shape(terms["logits"])[0]
        logs = {}
        for name, tracker in self._trackers.items():
            if name in LOSS_METRICS:
                if name not in terms:
                    continue  # a term this step did not compute
                tracker.update_state(terms[name], sample_weight=batch)
            else:
                tracker.update_state(labels, self._metric_input(terms["logits"]))
            logs[name] = tracker.result()
        return logs

    def _metric_input(self, logits):
        return tf.sigmoid(logits) if self.sfocus_config.multi_label else logits

    # -- serialisation -----------------------------------------------------

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable,
                "backbone": keras.saving.serialize_keras_object(self.backbone),
                "num_classes": self.num_classes, "weight_decay": self.weight_decay,
                "config": self.sfocus_config.to_dict()}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        config["config"] = SFocusConfig.from_saved(config["config"])
        return cls(**config)  # __init__ takes the SFocusConfig as a dict


def _check_feature_sizes(backbone):
    """Grad-CAM at a GAP head divides by the last map's ``H * W`` and the losses
    resize between the two maps: both sizes must be known when the graph is built."""
    for key in keras_models.FEATURE_KEYS:
        tensor = backbone.output[key]
        if None in tuple(tensor.shape[1:3]):
            layer = keras_compat.layer_of(tensor).name
            raise ValueError(
                f"backbone {backbone.name!r}: feature map {key!r} (layer {layer!r}) has an "
                f"unknown spatial size {tuple(tensor.shape[1:])} for input "
                f"{tuple(backbone.input_shape[1:])}; SFOCUS needs fixed sizes: build the "
                "backbone for one image size, e.g. keras_models.get(name, (32, 32, 3))")


def _classifier(backbone, num_classes, weight_decay):
    """The dense head, or for per-class last blocks the class-block head."""
    regularizer = keras_models.kernel_regularizer(weight_decay)
    if keras_models.has_class_blocks(backbone):
        return keras_models.ClassBlockDense(num_classes, kernel_regularizer=regularizer,
                                            name="classifier")
    return keras.layers.Dense(num_classes, name="classifier", kernel_regularizer=regularizer)


def _check_class_block_terms(backbone, config):
    needing = [term.weight for term in TERMS if term.class_blocks
               and getattr(config, term.weight) > 0]
    if needing and not keras_models.has_class_blocks(backbone):
        raise ValueError(f"{needing[0]}>0 needs a backbone with per-class last blocks; "
                         f"backbone {backbone.name!r} has none (build it with "
                         "class_block_width, e.g. --class_block_width=13)")


def _has_class(attention, role):
    """[B]: 1.0 where the example has a ``role`` ("target" / "confusing") class, 0.0
    where ``select_classes`` found none (multi-label: no positive / negative label)."""
    indicator = attention[role]
    return tf.cast(tf.reduce_any(indicator > 0, axis=-1), indicator.dtype)


def _resolve_num_classes(backbone, num_classes):
    suggested = getattr(backbone, "num_classes", None)
    if num_classes is None:
        num_classes = suggested
    if num_classes is None:
        raise ValueError("num_classes is required (the backbone does not carry one)")
    if suggested is not None and suggested != num_classes:
        raise ValueError(f"num_classes={num_classes} but the backbone was built for "
                         f"{suggested} classes")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2; got {num_classes!r}")
    return num_classes
