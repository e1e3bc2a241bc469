"""Data: readers, layouts and labels tables, the frame cache, splits, clip sampling, augmentation, the demo."""
