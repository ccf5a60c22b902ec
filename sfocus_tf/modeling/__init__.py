"""The method: SFocusConfig, the table of loss terms, Grad-CAM, maps, losses, SFocusModel, its fit metrics and input checks."""
