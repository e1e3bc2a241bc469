"""Training one fold: the loop, resume state, optimisation, batching, precision, checkpoints, DDP."""
