__version__ = "0.1.0"

from .install import guard as _guard
_guard()         # torch and torchvision must work together (nbs/00a_install.ipynb)
