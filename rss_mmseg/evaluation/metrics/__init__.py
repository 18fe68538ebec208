from .boundary_metric import BoundaryFScoreMetric

__all__ = ['BoundaryFScoreMetric']
