"""MANO regressors: tracked hands in, ``records.RegressedHand`` out (ROS-free).

``fit``: the hand model fitted to the detector's 21 3D (and 2D) keypoints, warm-started per
track (``regressors.fit``). ``hamer``: a user's HaMeR checkpoint on the hand crops
(``regressors.hamer`` around ``core.hamer``).
"""
from .base import REGRESSORS, Regressor, create_regressor

__all__ = ["REGRESSORS", "Regressor", "create_regressor"]
