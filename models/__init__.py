from models import openmp  # noqa: F401  (before any module of the package loads LightGBM)
