"""The user's side of the trainer: experiment files, the Tune runner, evaluation and rendering."""
