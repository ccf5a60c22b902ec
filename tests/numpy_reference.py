"""Independent NumPy versions of the SFOCUS formulas (docs/method.md), for tests."""

import numpy as np

EPS = 1e-8


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def soft_mask(a, sigma=0.55, omega=100.0):
    return sigmoid(omega * (a - sigma))


def separability(t, c, m):
    return 2 * (np.minimum(t, c) * m).sum(axis=(1, 2)) / ((t + c).sum(axis=(1, 2)) + EPS)


def bilinear_resize(maps, out_h, out_w):
    """Half-pixel-centre bilinear resize of [B, H, W] maps, written out by hand."""
    _, in_h, in_w = maps.shape

    def axis_weights(n_in, n_out):
        src = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
        src = np.clip(src, 0, n_in - 1)
        low = np.floor(src).astype(int)
        high = np.minimum(low + 1, n_in - 1)
        return low, high, src - low

    r0, r1, fr = axis_weights(in_h, out_h)
    c0, c1, fc = axis_weights(in_w, out_w)
    top = maps[:, r0][:, :, c0] * (1 - fc) + maps[:, r0][:, :, c1] * fc
    bottom = maps[:, r1][:, :, c0] * (1 - fc) + maps[:, r1][:, :, c1] * fc
    return top * (1 - fr)[None, :, None] + bottom * fr[None, :, None]


def consistency(a_in, mask_last, theta=0.8, clamp=False):
    up = bilinear_resize(mask_last, a_in.shape[1], a_in.shape[2])
    value = theta - (a_in * up).sum(axis=(1, 2)) / (a_in.sum(axis=(1, 2)) + EPS)
    return np.maximum(value, 0) if clamp else value


def normalize(a, method="max"):
    if method == "none":
        return a
    peak = a.max(axis=(1, 2), keepdims=True)
    if method == "max":
        return a / (peak + EPS)
    low = a.min(axis=(1, 2), keepdims=True)
    return (a - low) / (peak - low + EPS)


def activate(pre, activation="relu", temperature="logit"):
    """[B, h, w] weighted sums -> maps: relu, abs, or softmax over the h*w positions
    of h*w times the sum, over 1 or over its standard deviation across positions."""
    if activation == "relu":
        return np.maximum(pre, 0)
    if activation == "abs":
        return np.abs(pre)
    batch, height, width = pre.shape
    flat = pre.reshape(batch, -1) * height * width
    if temperature == "spatial_std":
        flat = flat / (flat.std(axis=1, keepdims=True) + EPS)
    flat = np.exp(flat - flat.max(axis=1, keepdims=True))
    return (flat / flat.sum(axis=1, keepdims=True)).reshape(pre.shape)


def gradcam(features, gradients, weighting="mean", activation="relu"):
    """features, gradients: [B, h, w, k] -> act(sum_k mean_ij(g) F) [B, h, w]."""
    if weighting == "relu_mean":
        gradients = np.maximum(gradients, 0)
    alpha = gradients.mean(axis=(1, 2))
    return activate((features * alpha[:, None, None, :]).sum(-1), activation)


def empty(maps, normalize="max"):
    """1 where a normalised map marks no position (raw peak <= EPS)."""
    threshold = EPS if normalize == "none" else 0.5
    return (maps.reshape(len(maps), -1).max(axis=1) <= threshold).astype(float)


def attention_scale(step, warmup, ramp):
    """Weight factor at 0-based optimizer step ``step``."""
    if ramp == 0:
        return float(step >= warmup)
    return min(max((step - warmup + 1) / ramp, 0.0), 1.0)


def black_white(class_blocks, labels, num_classes):
    """The ++ variant's L_BW, one example and one class at a time: class_blocks
    [B, H, W, C * k]; labels a list per example of its positive classes."""
    width = class_blocks.shape[-1] // num_classes
    out = []
    for features, positives in zip(class_blocks, labels):
        means = [features[..., c * width:(c + 1) * width].mean() for c in range(num_classes)]
        negatives = [c for c in range(num_classes) if c not in positives]
        if not positives or not negatives:
            out.append(0.0)
            continue
        out.append(np.exp(np.mean([means[c] for c in negatives])
                          - np.mean([means[c] for c in positives])))
    return np.array(out)
