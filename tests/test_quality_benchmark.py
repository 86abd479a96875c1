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


def test_the_fixed_point_is_the_teachers_chain_of_delta_steps():
    """With alpha(t_max) = 0 the chain's start does not matter, so a delta that divides [t_min, t_max] gives Heun-k's
    signal; a coarse DDIM chain is far worse."""
    import torch
    from boot_nb.sampling import heun_sample
    q = _quality()
    r = q.fixed_point('tiny', TINY, deltas=((1 - 0.002) / 4, 0.6))
    heun4, coarse_ddim = r['rows'][0], r['rows'][3]
    teacher = ring_mixture()
    eps = torch.randn(TINY['n'], *teacher.sample_shape, generator=torch.Generator().manual_seed(1))
    ref = heun_sample(teacher, eps, TINY['ref_steps'])
    y = heun_sample(teacher, eps, 4, t_min=0.002, trajectory=True)[1][-1]     # the signal at t_min, as a student's
    want = (y - ref).norm(dim=1).mean().item()
    assert (heun4['delta'], heun4['solver']) == (r['rows'][0]['delta'], 'heun')
    assert abs(heun4['endpoint'] - want) < 1e-3 * want, (heun4, want)
    assert coarse_ddim['solver'] == 'ddim' and coarse_ddim['endpoint'] > 3 * heun4['endpoint'], r['rows']


def test_regression_on_teacher_endpoints_trains_the_student_toward_them(tmp_path):
    q = _quality()
    case = {**TINY, 'steps': 50, 'lr': 1e-2}
    r = q.run_regression('tiny', case, [1, 4], pool=256, run_dir=tmp_path)
    first, last = (p['student']['endpoint'] for p in r['points'])
    assert [p['steps'] for p in r['points']] == [50, 200] and last < 0.7 * first, r['points']
    on_pairs = [p['student']['endpoint_on_pairs'] for p in r['points']]      # the pairs it trained on, too
    assert on_pairs[1] < 0.7 * on_pairs[0], on_pairs
    assert (tmp_path / 'tiny-pairs256-seed0.pt').is_file()
    again = q.run_regression('tiny', case, [1, 4], pool=256, run_dir=tmp_path)     # the cached pairs: the same run
    assert again['points'][-1]['student'] == r['points'][-1]['student']


def test_odd_inputs_get_a_clear_error_not_a_traceback(tmp_path, capsys):
    import pytest
    q = _quality()
    bad = tmp_path / 'bad.json'; bad.write_text('{"cases": {"digits-unet": ')           # cut short
    other = tmp_path / 'other.json'; other.write_text('{"cases": {"digits-unet": {"rows": []}}}')   # not --budgets
    for argv, says in [(['--budgets', '1', '--beside', str(bad)], 'cannot read it as JSON'),
                       (['--budgets', '1', '--beside', str(other)], 'not the results of a --budgets run'),
                       (['--budgets', '1', '--regression', '8', '--set', 'batch_size=8'], 'takes only --set ema_decay'),
                       (['--budgets', '1', '--replot', '--out', str(tmp_path / 'none.json')], 'there are none yet')]:
        with pytest.raises(SystemExit):
            q.main(['--cases', 'gmm2d', *argv])
        assert says in capsys.readouterr().err, argv
    (tmp_path / 'tiny-pairs256-seed0.pt').write_bytes(b'PK\x03\x04 half a file')
    with pytest.raises(SystemExit, match='cannot be read.*delete the file'):
        q.run_regression('tiny', TINY, [1], pool=256, run_dir=tmp_path)
