"""How binary and multiclass results are shown: ranked by how sure each prediction is."""

from __future__ import annotations

from abc import abstractmethod

import pandas as pd

from cineflow.presentation.base import VIEWS, TaskView


class ClassificationView(TaskView):
    """What binary and multiclass views share: correct/wrong, class captions, confidence rankings."""

    cam_kinds = ("correct_per_class", "confident_wrong", "uncertain")
    confidence_label = ""  # the calibration figure's x axis

    @abstractmethod
    def confidence(self, predictions: pd.DataFrame, threshold) -> pd.Series:
        """How sure each prediction is (ranks mistakes and Grad-CAM picks)."""

    @abstractmethod
    def roc_curves(self, oof: pd.DataFrame) -> list[tuple[str, pd.Series, pd.Series, float]]:
        """(name, positive?, score, line width) of each curve of the ROC (and PR) figure."""

    def mistakes(self, oof):
        """Wrong predictions, the most confident first."""
        threshold = oof["threshold"] if "threshold" in oof else None
        wrong = oof[~oof["correct"].astype(bool)]
        return wrong.assign(confidence=self.confidence(wrong, threshold if threshold is None else
                                                       threshold[wrong.index])).sort_values(
            ["confidence", "video_id"], ascending=[False, True])

    def mistakes_heading(self, oof):
        return f"Misclassified videos ({int((~oof['correct'].astype(bool)).sum())})"

    def mistake_cells(self, row):
        return {"truth": row.label, "prediction": row.prediction, "score": f"{row.score:.3f}"}

    def uncertainty_points(self, oof):
        """The score, correct and wrong predictions apart."""
        return "score", [(name, part, part["score"], colour) for name, part, colour in
                         (("correct", oof[oof["correct"]], "C2"), ("wrong", oof[~oof["correct"]], "C3"))]

    def cam_output(self, prediction, output):
        """The predicted class (one sigmoid output: that output)."""
        return self.task.classes.index(prediction) if output == "softmax" else 0

    def caption(self, pick):
        return f"true {pick.label} | pred {pick.prediction} | p={pick.score:.2f}"

    def cam_note(self, row):
        return f"true {row['label']}, predicted {row['prediction']} (p={row['score']:.2f})"

    def prediction_caption(self, pred):
        return f"pred {pred.prediction} | p={pred.score:.2f}"

    def cam_candidates(self, predictions, threshold, kinds):
        ranked = predictions.assign(confidence=self.confidence(predictions, threshold)).sort_values(
            ["confidence", "video_id"], ascending=[False, True])
        lists = []
        for kind in kinds or self.cam_kinds:
            if kind == "correct_per_class":
                right = ranked[ranked["correct"]]
                lists.append(right.groupby("label", sort=True).head(1).assign(kind=kind))
            elif kind == "confident_correct":
                lists.append(ranked[ranked["correct"]].assign(kind=kind))
            elif kind == "confident_wrong":
                lists.append(ranked[~ranked["correct"]].assign(kind=kind))
            elif kind == "uncertain":
                lists.append(self.most_uncertain(ranked).assign(kind=kind))
        return lists


@VIEWS.register
class BinaryView(ClassificationView):
    name = "binary"
    figures = ("roc", "pr", "confusion", "calibration", "decision_curve", "uncertainty", "learning_curves")
    confidence_label = "positive-class probability"

    def fold_cells(self, metrics):
        return {"threshold": round(metrics["threshold"], 4)}

    def confidence(self, predictions, threshold):
        return (predictions["score"] - threshold).abs()

    def roc_curves(self, oof):
        """Per fold and pooled (the positive class against the rest)."""
        positive = self.task.positive
        folds = [(f"fold {k}", t["label"] == positive, t["score"], 1) for k, t in
                 sorted(oof.groupby("fold"), key=lambda kv: kv[0])]
        return folds + [("pooled", oof["label"] == positive, oof["score"], 2.2)]


@VIEWS.register
class MulticlassView(ClassificationView):
    name = "multiclass"
    figures = ("roc", "confusion", "calibration", "uncertainty", "learning_curves")
    confidence_label = "top-class confidence"

    def confidence(self, predictions, threshold):
        return predictions["score"]

    def roc_curves(self, oof):
        """One-vs-rest per class, pooled over folds."""
        return [(c, oof["label"] == c, oof[f"score_{c}"], 1.5) for c in self.task.classes]
