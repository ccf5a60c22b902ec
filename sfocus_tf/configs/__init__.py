"""What a run is: TrainConfig, the recipes, the run directory's layout."""
