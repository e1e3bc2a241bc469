"""How regression results are shown: by the size of the error."""

from __future__ import annotations

from cineflow.presentation.base import VIEWS, TaskView


@VIEWS.register
class RegressionView(TaskView):
    name = "regression"
    cam_kinds = ("closest", "farthest", "uncertain")
    figures = ("scatter", "bland_altman", "bin_mae", "uncertainty", "learning_curves")
    mistake_score_header = "error"

    def uncertainty_points(self, oof):
        """The absolute error."""
        return "absolute error", [(None, oof, oof["error"].abs(), "C0")]

    def mistakes(self, oof):
        """The largest errors first."""
        return oof.assign(confidence=oof["error"].abs()).sort_values(["confidence", "video_id"],
                                                                     ascending=[False, True])

    def mistakes_heading(self, oof):
        return "Largest errors"

    def mistake_cells(self, row):
        return {"truth": f"{row.target:.1f}", "prediction": f"{row.prediction:.1f}", "score": f"{row.error:+.1f}"}

    def cam_candidates(self, predictions, threshold, kinds):
        """Closest and farthest predictions (each video in one of the two lists only); the most uncertain
        when MC dropout gave a spread (a regression value alone says nothing about its certainty)."""
        ranked = predictions.assign(confidence=-predictions["error"].abs()).sort_values(
            ["confidence", "video_id"], ascending=[False, True])
        half = (len(ranked) + 1) // 2
        lists = {"closest": ranked.iloc[:half], "farthest": ranked.iloc[half:][::-1]}
        if ranked["uncertainty"].notna().all():
            lists["uncertain"] = self.most_uncertain(ranked)
        return [lists[k].assign(kind=k) for k in kinds or self.cam_kinds if k in lists]

    def cam_output(self, prediction, output):
        return 0

    def caption(self, pick):
        return f"{self.task.target} true {pick.target:.1f} | pred {pick.prediction:.1f}"

    def cam_note(self, row):
        return f"predicted {row['score']:.1f}"

    def prediction_caption(self, pred):
        return f"pred {pred.prediction:.1f}"
