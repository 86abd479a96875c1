"""benchmarks/residual.py on the logs of two tiny runs: the per-t table, its ratios and the figure come from the
logs."""
import importlib.util, json
from pathlib import Path

import pytest

from boot_nb.exact import ring_mixture
from boot_nb.student import MLPStudent
from boot_nb.train import distill

SCRIPT = Path(__file__).resolve().parents[1] / 'benchmarks' / 'residual.py'


def _residual():
    spec = importlib.util.spec_from_file_location('residual', SCRIPT)
    module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
    return module


def _run(out, diagnose_every):
    teacher = ring_mixture()
    distill(teacher, MLPStudent(teacher.sample_shape, hidden=32, depth=1), steps=4, batch_size=8, out_dir=out,
            diagnose_every=diagnose_every, checkpoint_every=4, sample_every=0, progress=False, threads=1)


def test_tables_and_figure_from_the_logs(tmp_path, capsys):
    _run(tmp_path / 'a', diagnose_every=2)
    _run(tmp_path / 'b', diagnose_every=0)
    residual = _residual()
    residual.main([f'ring={tmp_path / "a"}', '--out', str(tmp_path / 'r' / 'residual')])
    runs = json.loads((tmp_path / 'r' / 'residual.json').read_text())
    log = [json.loads(l) for l in (tmp_path / 'a' / 'log.jsonl').read_text().splitlines()]
    diag = [r for r in log if 'bs_by_t' in r]
    assert [r['step'] for r in runs['ring']['rows']] == [r['step'] for r in diag] == [2, 4]
    assert runs['ring']['rows'][-1]['bs_by_t'] == diag[-1]['bs_by_t']
    md = (tmp_path / 'r' / 'residual.md').read_text()
    ratios = [float(v) for v in md.splitlines()[-1].split('|')[2:-1]]
    first, last = diag[0], diag[-1]
    want = [b / a for a, b in zip(first['bs_by_t'], last['bs_by_t'])] + [last['bc_fixed'] / first['bc_fixed']]
    assert ratios == pytest.approx(want, abs=0.006)          # printed with 2 decimals
    assert (tmp_path / 'r' / 'residual.png').read_bytes()[:4] == b'\x89PNG' and 'wrote' in capsys.readouterr().out
    with pytest.raises(SystemExit, match='has no diagnostics: run distill with diagnose_every > 0'):
        residual.main([f'b={tmp_path / "b"}', '--out', str(tmp_path / 'r2' / 'x')])
    with pytest.raises(SystemExit, match='give each run as NAME=FOLDER'): residual.main([str(tmp_path / 'a')])
    log_path = tmp_path / 'a' / 'log.jsonl'
    log_path.write_text(log_path.read_text() + '{"step": 5, "lo')          # killed mid-line: that line is left out
    residual.main([f'ring={tmp_path / "a"}', '--out', str(tmp_path / 'r3' / 'residual')])
    assert json.loads((tmp_path / 'r3' / 'residual.json').read_text()) == runs
    log_path.write_text('{"step": \n' + log_path.read_text())
    with pytest.raises(SystemExit, match='line 1 of .* is not JSON: the log is damaged'):
        residual.main([f'ring={tmp_path / "a"}', '--out', str(tmp_path / 'r4' / 'residual')])
