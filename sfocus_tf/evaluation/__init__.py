"""Evaluating a trained model: the data loop, NumPy metrics, the report, attention overlays."""
