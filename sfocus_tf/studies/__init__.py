"""Many runs: reproduction studies and the Keras Tuner search."""
