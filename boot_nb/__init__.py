__version__ = "0.1.0"

from .install import guard as _guard, run_by_the_command as _run_by_the_command
# torch and torchvision must work together (nbs/00a_install.ipynb). The `boot-nb` command checks it itself once its
# options are parsed, so that --help and a mistyped option answer without importing torch.
if not _run_by_the_command(): _guard()
