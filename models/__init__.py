"""Models, tasks and the trainer. Imports utils and modules; never preprocessors, evaluation, app or bins."""
