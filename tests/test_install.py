"""The install check (boot_nb.install): a torch and torchvision that do not work together fail in one line naming
both."""
import os, shutil, subprocess, sys

import pytest
import torch


@pytest.fixture
def broken_torchvision(tmp_path):
    "An environment whose torchvision 0.28.0 fails on import as a build for another torch does."
    (tmp_path / 'torchvision').mkdir()
    (tmp_path / 'torchvision' / '__init__.py').write_text("raise RuntimeError('operator torchvision::nms does not "
                                                          "exist')\n")
    (tmp_path / 'torchvision-0.28.0.dist-info').mkdir()
    (tmp_path / 'torchvision-0.28.0.dist-info' / 'METADATA').write_text('Metadata-Version: 2.1\nName: '
                                                                        'torchvision\nVersion: 0.28.0\n')
    return {**os.environ, 'PYTHONPATH': str(tmp_path)}


def run(argv, env):
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)


def test_import_boot_nb_names_both_versions_and_the_fix(broken_torchvision):
    r = run([sys.executable, '-c', 'import boot_nb'], broken_torchvision)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert (last.startswith('ImportError: ')
            and f'torch {torch.__version__} and torchvision 0.28.0 do not work together' in last)
    assert 'torchvision::nms does not exist' in last and 'pip install --force-reinstall' in last


@pytest.mark.parametrize('how', ['module', 'script'])
def test_the_command_says_it_in_one_line(broken_torchvision, tmp_path, how):
    "A job checks the pair once its options are parsed: one line, exit 1; --help needs no torch, so it still answers."
    script = shutil.which('boot-nb', path=os.path.dirname(sys.executable))
    if how == 'script' and script is None: pytest.skip('the boot-nb console script is not installed beside this python')
    command = [sys.executable, '-m', 'boot_nb.cli'] if how == 'module' else [script]
    r = run([*command, 'demo', '--out', str(tmp_path / 'demo')], broken_torchvision)
    assert r.returncode == 1 and r.stdout == ''
    lines = r.stderr.strip().splitlines()
    assert (len(lines) == 1
            and lines[0].startswith(f'boot-nb: torch {torch.__version__} and torchvision 0.28.0')), r.stderr
    assert not (tmp_path / 'demo').exists()
    r = run([*command, '--help'], broken_torchvision)
    assert r.returncode == 0 and 'distill' in r.stdout, r.stderr


def test_a_working_pair_imports(tmp_path):
    r = run([sys.executable, '-c', 'import boot_nb; print("ok")'], os.environ)
    assert r.returncode == 0 and r.stdout.strip() == 'ok', r.stderr
