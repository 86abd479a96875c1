"`boot-nb demo`: the numbers it writes say what the signal-ODE notebook derives, and the console script runs it."
import json, subprocess

import pytest

from boot_nb.cli import main
from boot_nb.cli_jobs import demo


@pytest.fixture(scope='module')
def rows(tmp_path_factory):
    out = tmp_path_factory.mktemp('demo')
    rows = demo(out)
    assert json.loads((out / 'signal_ode.json').read_text()) == rows          # what it writes is what it measured
    return {r['steps']: r for r in rows}


def test_ddim_in_x_and_in_signal_space_are_one_method(rows):
    assert all(r['x_vs_signal_ddim'] < 1e-12 for r in rows.values())           # float64: equal up to rounding


def test_ddim_is_first_order(rows):
    errors = [r['ddim_error'] for r in rows.values()]
    assert all(a > b for a, b in zip(errors, errors[1:]))                       # falls with every step count
    scaled = [rows[k]['ddim_error'] * k for k in (10, 20, 50)]                  # error ~ C / steps
    assert max(scaled) / min(scaled) < 1.1, scaled


def test_heun_beats_ddim(rows):
    assert all(r['heun_error'] < 0.5 * r['ddim_error'] for k, r in rows.items() if k > 2)
    assert rows[20]['heun_error'] < rows[50]['ddim_error']                     # with fewer evaluations (39 < 50)
    assert rows[20]['heun_error'] / rows[50]['heun_error'] > 1.3 * 50 / 20      # faster than first order
    assert [r['heun_nfe'] for r in rows.values()] == [2 * k - 1 for k in rows]


def test_console_script(tmp_path):
    r = subprocess.run(['boot-nb', 'demo', '--out', 'out'], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / 'out' / 'signal_paths.png').read_bytes()[:4] == b'\x89PNG'
    table = {int(l.split()[0]): l.split() for l in r.stdout.splitlines() if l.split() and l.split()[0].isdigit()}
    written = json.loads((tmp_path / 'out' / 'signal_ode.json').read_text())
    assert [float(table[w['steps']][2]) for w in written] == pytest.approx([w['ddim_error'] for w in written], rel=1e-2)


def test_unknown_command_is_one_line(capsys):
    with pytest.raises(SystemExit) as e: main(['bogus'])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count('\n') == 1 and "invalid choice: 'bogus'" in err, err
