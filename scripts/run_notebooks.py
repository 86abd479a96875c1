"""Execute notebooks in place, as the docs and GitHub show them, then clean them with nbdev_clean.

    python scripts/run_notebooks.py                  # every notebook in nbs/
    python scripts/run_notebooks.py nbs/06_losses.ipynb
    python scripts/run_notebooks.py --full tutorials/text_to_image.ipynb   # a tutorial's offline full run, as committed

Cells flagged `#| slow`, `#| gpu` or `#| eval: false` are skipped, as `nbdev_test` skips them: nothing trains for an
hour and nothing is written into the package. Notebooks run as `nbdev_test` runs them (IN_TEST=1: the tutorials' quick
path) unless `--full` is given: the committed tutorials show their offline full runs (no IN_TEST: on a CPU without the
hub, the shipped teachers at a budget that learns; the runs resume from their folders under tutorials/runs/), so the
tutorials are only executed when named. Progress bars are off (TQDM_DISABLE=1), so no widget state ends up in the
outputs. Run it before committing a notebook you changed."""
import argparse, os, re, subprocess, sys, time
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ExecutePreprocessor

ROOT = Path(__file__).resolve().parents[1]
SKIP = re.compile(r'^#\|\s*(slow|gpu|eval:\s*false)\b', re.M)


class SkipFlagged(ExecutePreprocessor):
    "Execute every code cell but those nbdev_test skips; a skipped cell keeps no stale output."
    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == 'code' and SKIP.search(cell.source):
            cell.outputs, cell.execution_count = [], None
            return cell, resources
        return super().preprocess_cell(cell, resources, index)


def run(path, timeout):
    nb = nbformat.read(path, as_version=4)
    nb = nbformat.from_dict(nbformat.validator.normalize(nb)[1])      # cells added by scripts may lack an id
    SkipFlagged(timeout=timeout, kernel_name='python3').preprocess(nb, {'metadata': {'path': str(path.parent)}})
    nbformat.write(nb, path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('notebooks', nargs='*', type=Path, help='default: nbs/*.ipynb and tutorials/*.ipynb')
    p.add_argument('--timeout', type=int, default=1800, help='seconds a cell may run (default: %(default)s)')
    p.add_argument('--full', action='store_true', help="run without IN_TEST: the tutorials' offline full runs (slow)")
    args = p.parse_args(argv)
    paths = args.notebooks or sorted(ROOT.glob('nbs/*.ipynb'))
    os.environ.update(TQDM_DISABLE='1', HF_HUB_DISABLE_PROGRESS_BARS='1')
    if args.full: os.environ.pop('IN_TEST', None)
    else: os.environ['IN_TEST'] = '1'
    for path in paths:
        start = time.time()
        run(path.resolve(), args.timeout)
        print(f'{path}: executed in {time.time() - start:.0f} s')
    for folder in {path.resolve().parent for path in paths}:
        subprocess.run(['nbdev_clean', '--fname', str(folder)], check=True, cwd=ROOT)


if __name__ == '__main__': sys.exit(main())
