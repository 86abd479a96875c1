"""benchmarks/quality.py --budgets with --run-dir: a run started again goes on from its last checkpoint and measures
exactly what one uninterrupted run measures."""
import importlib.util, json
from pathlib import Path

from boot_nb.exact import ring_mixture

SCRIPT = Path(__file__).resolve().parents[1] / 'benchmarks' / 'quality.py'


def _quality():
    spec = importlib.util.spec_from_file_location('quality_benchmark', SCRIPT)
    module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
    return module


TINY = dict(title='ring', teacher=ring_mixture, student=dict(hidden=16, depth=1), steps=3, batch_size=8, n=64,
            ref_steps=10, metric='mmd', target='DDIM-4')


def test_a_run_dir_continues_the_budgets_it_has_not_measured(tmp_path, capsys):
    q = _quality()
    whole = q.run_budgets('tiny', TINY, [1, 2, 3])
    first = q.run_budgets('tiny', TINY, [1, 2], run_dir=tmp_path)
    assert [p['budget'] for p in json.loads((tmp_path / 'tiny' / 'points.json').read_text())] == [1, 2]
    capsys.readouterr()
    again = q.run_budgets('tiny', TINY, [1, 2, 3], run_dir=tmp_path)        # trains 3x only, from the 2x checkpoint
    trained = capsys.readouterr().out
    assert '3x (9 steps)' in trained and '1x (3 steps)' not in trained and '2x (6 steps)' not in trained
    assert [p['budget'] for p in again['points']] == [1, 2, 3]
    for p, q_ in zip(whole['points'], again['points']):
        assert p['steps'] == q_['steps'] and p['student'] == q_['student'], (p, q_)
    assert first['points'] == again['points'][:2]
    assert again['teacher'] == whole['teacher']
    done = q.run_budgets('tiny', TINY, [1, 2, 3], run_dir=tmp_path)         # nothing left to train: the saved student
    assert done['points'] == again['points'] and done['teacher'] == whole['teacher']
