"""Hyperparameter search: one search space (space.py) read by Keras Tuner (keras_search.py) and by a DEAP genetic
algorithm (evolution.py); a trial trains one configuration with the train stage's own functions (trial.py)."""
