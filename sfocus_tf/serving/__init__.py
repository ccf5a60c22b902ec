"""SavedModel export for TensorFlow Serving and its version directories."""
