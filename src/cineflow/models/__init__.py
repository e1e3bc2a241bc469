"""Models: architectures (one module per family, registered in builder.MODELS), starting weights, losses, the
trained-model record and clip inference."""
