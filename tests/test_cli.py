"""`boot-nb distill` as a user meets it: runs that learn, resume exactly and stop cleanly on Ctrl-C; bad input as one
line in the command line's words before anything loads; help for every option; several processes under `torchrun`."""
import json, os, re, shutil, signal, subprocess, sys
from dataclasses import fields

import pytest
import torch

import boot_nb.cli
import boot_nb.config
import boot_nb.teachers
import boot_nb.train
from boot_nb.cli import main, option
from boot_nb.exact import EXACT_TEACHERS
from boot_nb.files import shipped_teachers
from boot_nb.student_files import load_student
from boot_nb.teachers import load_teacher
from boot_nb.train import DistillConfig, Distiller, checkpoints

TINY = ['--teacher', 'gmm2d', '--batch-size', '16', '--hidden', '16', '--depth', '1', '--sample-every', '0',
        '--eval-samples', '0', '--no-progress', '--cpu']


def rows(out): return {r['method']: r for r in json.loads((out / 'quality.json').read_text())['rows']}
def log(out): return [json.loads(l) for l in (out / 'log.jsonl').read_text().splitlines()]
def weights(out): return load_student(out / 'student').state_dict()


def test_a_run_learns_and_says_what_it_runs_on(tmp_path, capsys):
    """100 steps on the 8-Gaussian ring: the one-step student lands far closer to the teacher's ODE endpoints than
    DDIM-1 does."""
    assert main(['distill', '--teacher', 'gmm2d', '--out', str(tmp_path), '--steps', '100', '--batch-size', '64',
                 '--hidden', '64', '--depth', '2', '--checkpoint-every', '100', '--sample-every', '0', '--eval-samples',
                 '200', '--no-progress', '--threads', '1']) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == 'boot-nb distill: device cpu, mixed precision no, 1 CPU thread'
    q = rows(tmp_path)
    student, ddim1 = q['BOOT student, 1 step'], q['teacher DDIM-1']
    assert student['endpoint'] < 0.75 * ddim1['endpoint'] and student['mmd'] < 0.75 * ddim1['mmd'], q
    assert log(tmp_path)[-1]['step'] == 100 and f'wrote the student to {tmp_path / "student"}' in out


def test_resume_continues_the_same_run(tmp_path, capsys):
    """4 steps, then --resume up to 8: the log goes on from step 4 with the same losses, and the weights equal an 8-step
    run's."""
    run = lambda out, *a: main(['distill', '--out', str(out), '--lr-schedule', 'constant', '--checkpoint-every', '4',
                                '--log-every', '2', *TINY, *a])
    assert run(tmp_path / 'straight', '--steps', '8') == 0
    assert run(tmp_path / 'resumed', '--steps', '4') == 0
    assert run(tmp_path / 'resumed', '--steps', '8', '--resume') == 0
    straight, resumed = log(tmp_path / 'straight'), log(tmp_path / 'resumed')
    assert [r['step'] for r in resumed] == [2, 4, 6, 8]
    assert [r['loss'] for r in resumed] == [r['loss'] for r in straight]
    a, b = weights(tmp_path / 'straight'), weights(tmp_path / 'resumed')
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_ctrl_c_saves_a_checkpoint_and_exits_130(tmp_path, capsys, monkeypatch, sigint):
    """The first Ctrl-C: a checkpoint of the step it came in, one line saying how to go on, exit 130, no quality report;
    --resume then ends it."""
    train_step = Distiller.train_step
    def interrupted(self, step):
        vals = train_step(self, step)
        if step == 2: signal.raise_signal(signal.SIGINT)        # Ctrl-C during step 3
        return vals
    monkeypatch.setattr(Distiller, 'train_step', interrupted)
    args = ['distill', '--out', str(tmp_path), '--steps', '8', *TINY, '--eval-samples', '16']
    assert main(args) == 130
    out = capsys.readouterr().out
    assert [s for s, _ in checkpoints(tmp_path)] == [3] and not (tmp_path / 'quality.json').exists()
    assert 'Interrupted: step 3 of 8' in out and '--resume' in out and 'resume=True' not in out, out
    monkeypatch.setattr(Distiller, 'train_step', train_step)
    assert main([*args, '--resume']) == 0
    assert log(tmp_path)[-1]['step'] == 8 and (tmp_path / 'quality.json').exists()


BAD = [  # (arguments, what the one line must say); every one is caught before the teacher loads
    (['--steps', '0'], '--steps must be an integer >= 1, got 0.'),
    (['--batch-size', 'x'], "argument --batch-size: invalid int value: 'x'"),
    (['--solver', 'euler'], "argument --solver: invalid choice: 'euler'"),
    (['--t-min', '0.5', '--t-max', '0.5'], '--t-min 0.5 must be below --t-max 0.5.'),
    (['--guidance', '2'], '--guidance needs a context set: pass --labels or --prompts.'),
    (['--labels', '1', '--prompts', 'a cat'], 'Pass --prompts or --labels, not both.'),
    (['--lr', '0'], '--lr must be > 0'),
    (['--threads', '0'], '--threads must be >= 1'),
    (['--eval-samples', '1'], '--eval-samples must be 0 (no quality table) or at least 2'),
    (['--hidden', '0'], '--hidden must be an integer >= 1'),
    (['--out', 'FILE'], 'is a file, not a folder: choose another --out.'),
    (['--out', 'RUN'],
     'already holds checkpoints (last: step 4): pass --resume to continue that run, or choose another --out.'),
    (['--teacher', 'nonexistent'],
     "--teacher 'nonexistent' is not an exact teacher (gmm2d, gmm8d, digits-exact), a teacher shipped"),
    (['--teacher', './no/such/folder'], "--teacher './no/such/folder' is not"),
    (['--teacher'], 'argument --teacher: expected one argument'),
]

@pytest.mark.parametrize('args, message', BAD, ids=[' '.join(a) for a, _ in BAD])
def test_bad_input_is_one_line_in_cli_words_before_anything_loads(tmp_path, capsys, monkeypatch, args, message):
    def load(*a, **k): raise AssertionError('the teacher was loaded before the arguments were checked')
    monkeypatch.setattr(boot_nb.teachers, 'load_teacher', load)
    (tmp_path / 'FILE').write_text('not a folder')
    (tmp_path / 'RUN' / 'checkpoints' / 'step-00000004').mkdir(parents=True)
    args = [str(tmp_path / a) if a in ('FILE', 'RUN') else a for a in args]
    with pytest.raises(SystemExit) as e: main(['distill', '--teacher', 'gmm2d', '--out', str(tmp_path / 'out'), *args])
    out, err = capsys.readouterr()
    assert e.value.code == 2 and out == '', out
    assert err.count('\n') == 1 and err.startswith('boot-nb distill: error: ') and message in err, err
    # Python's words
    assert not re.search(r'`|\b\w+=(True\b|[\d.]|$)|\b(t_min|t_max|out_dir|batch_size|eval_samples)\b', err), err


SAID = [  # (arguments, the one line): refused by DistillConfig, check_out_dir and, after the teacher loads, resolve
    (['--steps', '0'], '--steps must be an integer >= 1, got 0.'),
    (['--t-min', '0.5', '--t-max', '0.5'], '--t-min 0.5 must be below --t-max 0.5.'),
    (['--out', 'RUN'],
     'already holds checkpoints (last: step 4): pass --resume to continue that run, or choose another --out.'),
    (['--teacher', 'digits-rgb', '--t-min', '0.7'],
     "--t-min 0.7 must be below --t-max 0.6746 (the teacher's default)."),
]

@pytest.mark.parametrize('args, message', SAID, ids=[' '.join(a) for a, _ in SAID])
def test_a_refused_setting_is_said_as_its_option_without_rewriting(tmp_path, capsys, monkeypatch, args, message):
    "A `SettingError` knows its setting: the command says it as the option, with `cli_words` (a regex) out of the way."
    monkeypatch.setattr(boot_nb.cli, 'cli_words', lambda msg: msg)
    (tmp_path / 'RUN' / 'checkpoints' / 'step-00000004').mkdir(parents=True)
    args = [str(tmp_path / a) if a == 'RUN' else a for a in args]
    with pytest.raises(SystemExit) as e:
        main(['distill', '--teacher', 'gmm2d', '--out', str(tmp_path / 'out'), *args])
    # the lines but diffusers' bar of a teacher that loads
    err = [l for l in capsys.readouterr().err.splitlines() if l.strip() and 'Loading pipeline components' not in l]
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith('boot-nb distill: error: '), err
    assert message in err[0] and not re.search(r'\w=', err[0]), err


# The command as a process: which of torch, torchvision and diffusers it imported, printed as it exits.
AS_THE_COMMAND = """
import atexit, sys
sys.argv[0] = 'boot-nb'
atexit.register(lambda: print('imported', sorted({m.split('.')[0] for m in sys.modules}
                                                 & {'torch', 'torchvision', 'diffusers'})))
from boot_nb.cli import main
sys.exit(main(sys.argv[1:]))
"""
NO_TORCH = [(['--help'], 0, 'distill'), (['distill', '--stepz', '3'], 2, 'unrecognized arguments: --stepz'),
            (['distill', '--teacher', 'gmm2d', '--delta', '2'], 2, '--delta must be in (0, 1)'),
            (['distill', '--teacher', 'gmm2d', '--mixed-precision', 'fp8'], 2, "invalid choice: 'fp8'"),
            (['distill', '--teacher', 'gmm2d', '--out', 'FILE'], 2, 'is a file, not a folder'),
            (['sample', '--student', 'x', '--n', 'many'], 2, "invalid int value: 'many'"),
            (['eval', '--n', '0'], 2, 'required: --student')]

@pytest.mark.parametrize('args, code, message', NO_TORCH, ids=[' '.join(a) for a, _, _ in NO_TORCH])
def test_help_and_bad_options_need_no_torch(tmp_path, args, code, message):
    "--help, a mistyped option and a setting out of range answer before torch is imported (so at once)."
    (tmp_path / 'FILE').write_text('not a folder')
    r = subprocess.run([sys.executable, '-c', AS_THE_COMMAND, *args], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == code and message in r.stdout + r.stderr, r.stderr
    assert r.stdout.strip().splitlines()[-1] == 'imported []', r.stdout[-500:]


def test_a_job_imports_torch_once_its_options_are_checked(tmp_path):
    "The control: a job that runs imports torch (and the pair check passes on this install)."
    r = subprocess.run([sys.executable, '-c', AS_THE_COMMAND, 'demo', '--out', str(tmp_path)], capture_output=True,
                       text=True, timeout=300)
    last = r.stdout.strip().splitlines()[-1]
    assert r.returncode == 0 and "'torch'" in last and "'torchvision'" in last, r.stdout[-500:] + r.stderr[-500:]


def test_errors_only_the_teacher_can_tell_are_one_line_too(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    for args, message in [(['--teacher', 'gmm2d', '--labels', '1'],
                           '--labels were given but the teacher takes no condition'),
                          (['--teacher', 'someone/missing'], "Cannot load 'someone/missing'")]:
        with pytest.raises(SystemExit) as e: main(['distill', '--out', str(tmp_path), *args])
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.count('\n') == 1 and message in err and 'load_teacher(' not in err, err
    assert 'pass --teacher path/to/folder' in err


def test_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    "--debug, or BOOT_NB_DEBUG=1, lets the exception (and so its traceback) through for a bug report."
    args = ['distill', '--teacher', 'gmm2d', '--out', str(tmp_path), '--steps', '0']
    with pytest.raises(ValueError, match='steps= must be an integer'): main([*args, '--debug'])
    monkeypatch.setenv('BOOT_NB_DEBUG', '1')
    with pytest.raises(ValueError, match='steps= must be an integer'): main(args)


def test_every_option_has_help_with_its_default(capsys):
    with pytest.raises(SystemExit) as e: main(['distill', '--help'])
    assert e.value.code == 0
    text = capsys.readouterr().out.split('options:', 1)[1]
    helps = {entry.split()[0].rstrip(','): ' '.join(entry.split()) for entry in re.split(r'\n  (?=-)', text)[1:]}
    # every setting of distill is an option
    assert {option(f.name) for f in fields(DistillConfig)} <= helps.keys()
    missing = [name for name, h in helps.items() if name != '-h' and 'default' not in h and '(required)' not in h]
    assert not missing, f'options without their default: {missing}'
    for f in fields(DistillConfig):
        if f.default is not None:
            shown = {True: 'on', False: 'off'}.get(f.default, f.default) if isinstance(f.default, bool) else f.default
            assert f'(default: {shown})' in helps[option(f.name)], helps[option(f.name)]
    assert all(name in helps['--teacher'] for name in [*EXACT_TEACHERS, *shipped_teachers()]) and shipped_teachers()


def test_two_processes(tmp_path):
    "`torchrun -m boot_nb.cli`: DistributedDataParallel on CPU (gloo); one process reports, each saves its RNG state."
    torchrun = shutil.which('torchrun') or pytest.skip('torchrun is not installed')
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONWARNINGS': 'ignore'}
    r = subprocess.run([torchrun, '--nproc_per_node', '2', '-m', 'boot_nb.cli', 'distill', '--out', str(tmp_path),
                        '--steps', '4', '--checkpoint-every', '2', *TINY], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count('wrote the student to') == 1 and 'x 2 processes' in r.stdout, r.stdout
    assert log(tmp_path)[-1]['step'] == 4
    assert sorted(p.name for p in checkpoints(tmp_path)[-1][1].iterdir()) == ['optimizer.bin', 'rng-0.safetensors',
                                                                              'rng-1.safetensors',
                                                                                'state.json', 'student']


def test_readme_command_on_the_shipped_digits_teacher(tmp_path, capsys, monkeypatch):
    """The README's main command, shortened: the shipped UNet distilled into a copy of itself, saved as a diffusers
    folder, with its grid."""
    measured, idle_cores = [], boot_nb.config.idle_cores
    monkeypatch.setattr(boot_nb.config, 'idle_cores', lambda *a: measured.append(idle_cores(*a)) or measured[-1])
    assert main(['distill', '--teacher', 'digits', '--out', str(tmp_path), '--steps', '2', '--batch-size', '4', '--lr',
                 '1e-3', '--sample-every', '2', '--eval-samples', '0', '--no-progress']) == 0
    student, teacher = load_student(tmp_path / 'student'), load_teacher('digits')
    # a copy of the teacher's network
    assert student.net.state_dict().keys() == teacher.net.state_dict().keys()
    # that trained
    assert not all(torch.equal(v, teacher.net.state_dict()[k]) for k, v in student.net.state_dict().items())
    assert (tmp_path / 'samples' / 'step-00000002.png').exists()
    # the idle cores are measured once, for the start line, and distill runs with that count
    assert len(measured) == 1


def test_a_warning_of_the_library_is_one_line_in_cli_words(tmp_path, capsys):
    "The gain warning of an epsilon copy at --t-max 0.8 (07_student) reads as the command's line, naming its options."
    assert main(['distill', '--teacher', 'digits-rgb', '--t-max', '0.8', '--steps', '1', '--batch-size', '1',
                 '--sample-every', '0', '--eval-samples', '0', '--no-progress', '--threads', '1',
                 '--out', str(tmp_path)]) == 0
    err = [l for l in capsys.readouterr().err.splitlines() if 'gain' in l]
    assert len(err) == 1 and err[0].startswith('boot-nb distill: warning: A copy of this epsilon teacher has gain'), err
    assert 'at --t-max 0.8' in err[0] and 'Leave --t-max unset for the default --t-max 0.6746' in err[0], err
    assert not re.search(r'`|t_max|UserWarning|\.py:\d', err[0]), err
