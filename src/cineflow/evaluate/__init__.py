"""Evaluation: tasks, metrics, inference, fold evaluation, the pooled summary, Grad-CAM, prediction."""
