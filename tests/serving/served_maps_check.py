"""The maps an export serves, in a process that never imports the project.

    python served_maps_check.py VERSION_DIR CASES.npz
CASES.npz holds ``images`` (uint8) and the project's ``target_map`` / ``confusing_map``
for them (evaluation's maps, resized to the input). Prints the largest difference of
each and exits non-zero when one exceeds ``tolerance`` (also in CASES.npz).
"""

import sys

import numpy as np
import tensorflow as tf

FORBIDDEN = ("sfocus_tf", "keras_models")


def main(version_dir, cases_path):
    cases = np.load(cases_path)
    served = tf.saved_model.load(version_dir).signatures["attention"](
        images=tf.constant(cases["images"]))
    differences = {name: float(np.abs(served[name].numpy() - cases[name]).max())
                   for name in ("target_map", "confusing_map")}
    print("max abs differences", differences)
    assert not [m for m in sys.modules if m.split(".")[0] in FORBIDDEN], "project imported"
    assert max(differences.values()) <= float(cases["tolerance"]), differences


if __name__ == "__main__":
    main(*sys.argv[1:])
