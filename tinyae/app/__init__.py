"""The application around the engine: the ``tinyae`` command, the training loop, evaluation, figures and
checkpoints. The engine and the library (tensor, ops, nn, optim, models, data) import nothing from here."""
