"""Deployment: a finished model as a portable bundle (fold models, ONNX exports, the preprocessing contract,
thresholds, calibrations, shift references, model card, checksums) and prediction from that bundle alone."""
