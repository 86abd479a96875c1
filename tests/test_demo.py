"The `boot-nb` console script, as a user runs it."
import json, subprocess, sys


def run(*args, cwd):
    return subprocess.run(['boot-nb', *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_demo_writes_table_and_figure(tmp_path):
    r = run('demo', '--out', 'out', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = json.loads((tmp_path / 'out' / 'signal_ode.json').read_text())
    assert [x['steps'] for x in rows] == [1, 2, 4, 10, 20, 50]
    assert (tmp_path / 'out' / 'signal_paths.png').read_bytes()[:4] == b'\x89PNG'
    assert 'DDIM error' in r.stdout


def test_unknown_command_is_a_clear_error(tmp_path):
    r = run('bogus', cwd=tmp_path)
    assert r.returncode == 2
    assert "invalid choice: 'bogus'" in r.stderr
