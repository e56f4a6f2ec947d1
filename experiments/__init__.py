"""Experiment files: recipes built from executor steps (`experiments.defaults`)."""
