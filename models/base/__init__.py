"""Generic training: the trainer loop, the task interface, checkpoints, weight loading, the epoch sampler.
Knows nothing about audio: imports utils' generic helpers (errors, io, log) and libraries only."""
