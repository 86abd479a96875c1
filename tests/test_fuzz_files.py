"""Crafted and damaged files of every kind a user can receive (student, pipeline and teacher folders, checkpoints, the
log, the command's record): each is a `BOOTFileError`, one line that names the file, and no code runs. A damaged newest
checkpoint is moved aside and the run resumes from the one before; a resume with another teacher or student is refused,
listing what differs; a kill during the log rewrite loses no line; a file-size limit during a save keeps the previous
checkpoint; running out of memory is said as such."""
import json, math, os, pickle, shutil, subprocess, sys, textwrap, warnings

import pytest
import torch
from safetensors.torch import load_file, save_file

from boot_nb.cli import main
from boot_nb.exact import GaussianMixtureTeacher
from boot_nb.files import MAX_JSON_BYTES, BOOTFileError
from boot_nb.schedules import linear_schedule
from boot_nb.student import MLPStudent
from boot_nb.student_files import load_student
from boot_nb.teachers import context_set, load_teacher
from boot_nb.train import checkpoints, distill

torch.set_num_threads(1)
RUN = dict(batch_size=8, checkpoint_every=2, sample_every=0, log_every=1, progress=False, lr_schedule='constant')
RING = [[2., 0], [0, 2], [-2, 0], [0, -2]]
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONWARNINGS': 'ignore'}


def ring(**kw): return GaussianMixtureTeacher(torch.tensor(RING), std=0.2, **kw)
def small(hidden=16):
    torch.manual_seed(0)
    return MLPStudent((2,), hidden=hidden, depth=1)
def run(out, steps, teacher=None, student=None, **kw):
    return distill(teacher or ring(), student or small(), out_dir=out, steps=steps, **{**RUN, **kw})


class Touch:
    "Unpickling this runs `touch path`: what an attacker would put in a shared file."
    def __init__(self, path): self.path = path
    def __reduce__(self): return (os.system, (f'touch {self.path}',))


def refused(load, name, marker):
    "`load()` raises a BOOTFileError whose one line names the file `name`, and creates no `marker`."
    with pytest.raises(Exception) as info: load()
    assert not marker.exists(), 'loading ran code'
    assert info.type is BOOTFileError, f'{info.type.__name__}: {info.value}'
    msg = str(info.value)
    assert name in msg and '\n' not in msg, msg
    return msg


@pytest.fixture(scope='module')
def done(tmp_path_factory):
    "A finished 4-step run: checkpoints at 2 and 4, its student folder, its log."
    out = tmp_path_factory.mktemp('run') / 'run'
    run(out, 4)
    return out


def json_cases(marker, good):
    "(name, bytes) of crafted JSON files, from a `good` object."
    return [('truncated', json.dumps(good).encode()[:-5]), ('not UTF-8', b'{"t_min": "\xff\xfe"}'),
            ('a list', b'[1, 2]'), ('NaN', json.dumps({**good, 'x': 1.25}).replace('1.25', 'NaN').encode()),
            ('deep', b'[' * 50_000), ('empty', b''), ('a pickle', pickle.dumps(Touch(marker))),
            ('too big', b' ' * (MAX_JSON_BYTES + 1))]


def student_cases(cfg, marker):
    "(name, changes to boot_student.json) that must be refused."
    net = cfg['net']
    return [('t_min above t_max', {'t_min': 0.9, 't_max': 0.5}), ('t_max above 1', {'t_max': 2}),
            ('t_min overflows', {'t_min': 1e999}), ('t_min a string', {'t_min': '0.1'}),
            ('guidance inf', {'guidance': 1e999}), ('sample_shape 0', {'sample_shape': [0]}),
            ('schedule code', {'schedule': {'type': 'import os'}}),
            ('net os.system', {'net': {'class': 'os.system', 'format': 'safetensors',
                                       'config': {'command': f'touch {marker}'}}}),
            ('net 80 TB', {'net': {**net, 'config': {**net['config'], 'hidden': 100_000, 'depth': 1000}}}),
            ('net config unknown key', {'net': {**net, 'config': {**net['config'], 'evil': 1}}}),
            ('hidden a float', {'net': {**net, 'config': {**net['config'], 'hidden': 16.0}}}),
            ('parameterisation for an MLP', {'parameterization': {'type': 'diffusers', 'prediction_type': 'epsilon',
                                                                  'clip_sample': None, 'thresholding': None,
                                                                  'null_class': None, 'predict_kwargs': {}}})]


def test_crafted_student_folders(tmp_path, done):
    folder, marker = tmp_path / 'student', tmp_path / 'pwned'
    shutil.copytree(done / 'student', folder)
    path = folder / 'boot_student.json'
    cfg = json.loads(path.read_text())
    for name, data in json_cases(marker, cfg):
        path.write_bytes(data)
        refused(lambda: load_student(folder), str(path), marker)
    for name, changes in student_cases(cfg, marker):
        path.write_text(json.dumps({**cfg, **changes}))
        refused(lambda: load_student(folder), str(path), marker)
    path.write_text(json.dumps(cfg))
    weights = folder / 'net.safetensors'
    good, sd = weights.read_bytes(), load_file(weights)
    for name, tensors in [('wrong shape', {**sd, 'inp.weight': torch.zeros(3, 2)}),
                          ('int8', {k: v.to(torch.int8) for k, v in sd.items()}),
                          ('NaN', {**sd, 'inp.bias': torch.full_like(sd['inp.bias'], math.nan)}),
                          ('inf', {**sd, 'inp.bias': torch.full_like(sd['inp.bias'], math.inf)}),
                          ('missing', {k: v for k, v in sd.items() if k != 'inp.bias'}),
                          ('extra', {**sd, 'evil': torch.zeros(1)}), ('truncated', None), ('a pickle', 'pickle')]:
        if tensors is None: weights.write_bytes(good[:-100])
        elif tensors == 'pickle': weights.write_bytes(pickle.dumps(Touch(marker)))
        else: save_file(tensors, weights)
        msg = refused(lambda: load_student(folder), str(weights), marker)
        if name == 'wrong shape': assert "layer 'inp.weight' has shape [3, 2], the config makes [16, 2]" in msg, msg
    weights.write_bytes(good)
    assert load_student(folder).t_min == cfg['t_min']                # and the folder put back loads


def test_links_fifos_and_endless_files_are_not_read(tmp_path, done):
    folder, marker = tmp_path / 'student', tmp_path / 'pwned'
    shutil.copytree(done / 'student', folder)
    path = folder / 'boot_student.json'
    (tmp_path / 'elsewhere.json').write_text(path.read_text())
    for target in [tmp_path / 'elsewhere.json', '/dev/zero', '/proc/self/environ']:
        path.unlink(); path.symlink_to(target)
        assert 'outside the folder' in refused(lambda: load_student(folder), str(path), marker)
    path.unlink(); os.mkfifo(path)                                     # a plain open() would wait for a writer for ever
    assert 'not a regular file' in refused(lambda: load_student(folder), str(path), marker)


def tiny_unet(**kw):
    import diffusers
    return diffusers.UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16),
                                 norm_num_groups=4, layers_per_block=1, down_block_types=('DownBlock2D',) * 2,
                                 up_block_types=('UpBlock2D',) * 2, **kw)


def test_crafted_pipeline_and_teacher_folders(tmp_path):
    import diffusers
    from boot_nb.pipeline import BOOTPipeline
    from boot_nb.config import default_t_max
    from boot_nb.student import make_student
    diffusers.utils.logging.set_verbosity_error()
    marker = tmp_path / 'pwned'
    teacher_dir = tmp_path / 'teacher'
    diffusers.DDPMPipeline(unet=tiny_unet(), scheduler=diffusers.DDPMScheduler()).save_pretrained(teacher_dir)
    teacher = load_teacher(teacher_dir)
    pipe_dir = tmp_path / 'pipe'
    BOOTPipeline.from_student(make_student(teacher, None, 0.002, default_t_max(teacher), None, None),
                              teacher).save_pretrained(pipe_dir)
    index = json.loads((pipe_dir / 'model_index.json').read_text())
    cases = [*json_cases(marker, index),
             ('boot_config t_min NaN',
              json.dumps({**index, 'boot_config': {**index['boot_config'], 't_min': 'nan'}}).encode()),
             ('boot_config a list', json.dumps({**index, 'boot_config': [1]}).encode()),
             ('unet os.system', json.dumps({**index, 'unet': ['os', 'system']}).encode())]
    for name, data in cases:
        (pipe_dir / 'model_index.json').write_bytes(data)
        refused(lambda: BOOTPipeline.from_pretrained(pipe_dir), str(pipe_dir / 'model_index.json'), marker)
        refused(lambda: load_student(pipe_dir), str(pipe_dir / 'model_index.json'), marker)
    (pipe_dir / 'model_index.json').write_text(json.dumps(index))
    unet = pipe_dir / 'unet' / 'diffusion_pytorch_model.safetensors'
    sd = load_file(unet)
    save_file({**sd, 'conv_in.bias': torch.full_like(sd['conv_in.bias'], math.nan)}, unet)
    refused(lambda: BOOTPipeline.from_pretrained(pipe_dir), str(unet), marker)
    # diffusers alone loads it, conv_in.bias random
    save_file({k: v for k, v in sd.items() if k != 'conv_in.bias'}, unet)
    refused(lambda: BOOTPipeline.from_pretrained(pipe_dir), str(unet.parent), marker)
    config = json.loads((pipe_dir / 'unet' / 'config.json').read_text())
    # 1.8 TB of float32
    (pipe_dir / 'unet' / 'config.json').write_text(json.dumps({**config, 'block_out_channels': [8192, 65536]}))
    msg = refused(lambda: BOOTPipeline.from_pretrained(pipe_dir), str(pipe_dir / 'unet' / 'config.json'), marker)
    # before allocating
    assert 'makes a UNet2DModel of 4.89e+11 parameters' in msg, msg
    (pipe_dir / 'unet' / 'config.json').write_text('[]')
    refused(lambda: BOOTPipeline.from_pretrained(pipe_dir), str(pipe_dir / 'unet' / 'config.json'), marker)
    # a teacher folder: its model_index.json, and the boot_nb.json beside it
    good = (teacher_dir / 'model_index.json').read_bytes()
    for name, data in json_cases(marker, json.loads(good)):
        (teacher_dir / 'model_index.json').write_bytes(data)
        refused(lambda: load_teacher(teacher_dir), str(teacher_dir / 'model_index.json'), marker)
    (teacher_dir / 'model_index.json').write_bytes(good)
    for data in [json.dumps({'null_class': 'os.system'}), json.dumps({'negative_prompt': ['a']}),
                 json.dumps({'guidance_scale': 'x'}), json.dumps({'prompts': {'0': 'zero'}}), '{"null_class": 0',
                 '["null_class"]']:
        (teacher_dir / 'boot_nb.json').write_text(data)
        refused(lambda: load_teacher(teacher_dir), str(teacher_dir / 'boot_nb.json'), marker)


def crafted_checkpoint(run_dir, tmp_path, damage, keep_older):
    """A copy of `run_dir` whose last checkpoint is damaged by `damage(folder)`; the older checkpoint is kept if
    `keep_older`."""
    out = tmp_path / 'out'
    shutil.rmtree(out, ignore_errors=True); shutil.copytree(run_dir, out)
    (older, _), (_, last) = checkpoints(out)
    if not keep_older: shutil.rmtree(out / 'checkpoints' / f'step-{older:08d}')
    damage(last)
    return out, last


def write(name, data):
    def damage(folder): (folder / name).write_bytes(data(folder / name) if callable(data) else data)
    return damage
def state(**changes):
    return lambda folder: (folder / 'state.json').write_text(
        json.dumps({**json.loads((folder / 'state.json').read_text()), **changes}))
def remove(name): return lambda folder: (shutil.rmtree if (folder / name).is_dir() else os.unlink)(folder / name)
def rng_without_metadata(folder):
    f = folder / 'rng-0.safetensors'
    save_file(load_file(f), f)
def empty(folder):
    shutil.rmtree(folder); folder.mkdir()


CHECKPOINT_DAMAGE = {   # name: (damage, the file the message names)
    'state.json truncated': (write('state.json', lambda f: f.read_bytes()[:-7]), 'state.json'),
    'state.json not UTF-8': (write('state.json', b'{"step": "\xff"}'), 'state.json'),
    'state.json a list': (write('state.json', b'[4]'), 'state.json'),
    'step a string': (state(step='4'), 'state.json'), 'step a float': (state(step=4.0), 'state.json'),
    'step negative': (state(step=-4), 'state.json'), 'step not the folder': (state(step=2), 'state.json'),
    'step missing': (lambda f: (f / 'state.json').write_text(json.dumps({'config': {}})), 'state.json'),
    'config a list': (state(config=[1]), 'state.json'),
    'no state.json': (remove('state.json'), 'step-00000004'),
    'no optimizer.bin': (remove('optimizer.bin'), 'step-00000004'),
    'optimizer.bin truncated': (write('optimizer.bin', lambda f: f.read_bytes()[:-50]), 'optimizer.bin'),
    'optimizer.bin a pickle': (write('optimizer.bin', lambda f: pickle.dumps(Touch(f.parent / 'pwned'))),
                               'optimizer.bin'),
    'no student': (remove('student'), 'step-00000004'),
    'weights truncated': (write('student/net.safetensors', lambda f: f.read_bytes()[:-40]), 'net.safetensors'),
    'rng truncated': (write('rng-0.safetensors', lambda f: f.read_bytes()[:-8]), 'rng-0.safetensors'),
    'rng without metadata': (rng_without_metadata, 'rng-0.safetensors'),
    'no rng': (remove('rng-0.safetensors'), 'step-00000004'),
    'a pickle file': (lambda f: (f / 'random_states_0.pkl').write_bytes(pickle.dumps(Touch(f.parent / 'pwned'))),
                      'step-00000004'),
    'empty folder': (empty, 'step-00000004'),
}


@pytest.mark.parametrize('case', CHECKPOINT_DAMAGE)
def test_a_damaged_checkpoint_alone_is_refused_in_one_line(tmp_path, done, case):
    damage, name = CHECKPOINT_DAMAGE[case]
    out, last = crafted_checkpoint(done, tmp_path, damage, keep_older=False)
    refused(lambda: run(out, 6, resume=True), name, out / 'checkpoints' / 'pwned')
    assert last.is_dir() and not list((out / 'checkpoints').glob('damaged-*'))        # nothing moved, nothing deleted


@pytest.fixture(scope='module')
def straight(tmp_path_factory):
    "The weights of an uninterrupted 6-step run."
    return run(tmp_path_factory.mktemp('straight') / 'run', 6).state_dict()


@pytest.mark.parametrize('case', ['weights truncated', 'no optimizer.bin', 'empty folder', 'step not the folder',
                                  'rng without metadata'])
def test_a_damaged_newest_checkpoint_is_moved_aside_and_the_run_resumes_from_the_one_before(tmp_path, done, straight,
                                                                                            case):
    damage, _ = CHECKPOINT_DAMAGE[case]
    out, last = crafted_checkpoint(done, tmp_path, damage, keep_older=True)
    before = sorted(p.relative_to(last) for p in last.rglob('*'))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        resumed = run(out, 6, resume=True)
    moved = [str(w.message) for w in caught if 'aside' in str(w.message)]
    assert len(moved) == 1 and '\n' not in moved[0] and 'resuming from step-00000002' in moved[0], moved
    aside = out / 'checkpoints' / 'damaged-step-00000004'
    # kept as it was, not deleted
    assert sorted(p.relative_to(aside) for p in aside.rglob('*')) == before
    assert [s for s, _ in checkpoints(out)] == [4, 6]
    # as if nothing had happened
    for k, v in straight.items(): assert torch.equal(v, resumed.state_dict()[k]), k
    assert [json.loads(l)['step'] for l in (out / 'log.jsonl').read_text().splitlines()] == [1, 2, 3, 4, 5, 6]


def test_resume_checks_the_teacher_student_and_steps(tmp_path, done):
    out = tmp_path / 'out'
    for teacher, student, steps, differs in [
            (ring(schedule=linear_schedule()), None, 6, "'schedule': ('CosineSchedule"),
            (GaussianMixtureTeacher(torch.tensor(RING) * 2, std=0.2), None, 6, "'teacher weights'"),
            (None, small(hidden=8), 6, "'student': ('MLPStudent"),
            (None, None, 3, 'is at step 4, beyond `steps`=3')]:
        shutil.rmtree(out, ignore_errors=True); shutil.copytree(done, out)
        with pytest.raises(ValueError) as info: run(out, steps, teacher, student, resume=True)
        assert info.type is ValueError and differs in str(info.value) and '\n' not in str(info.value), info.value
        assert [s for s, _ in checkpoints(out)] == [2, 4] and not list((out / 'checkpoints').glob('damaged-*'))


class Wrapped:
    "A duck-typed teacher around another (no boot_nb class, no tensors of its own): what is there is checked."
    def __init__(self, teacher):
        self.teacher, self.schedule, self.sample_shape = teacher, teacher.schedule, teacher.sample_shape
    def __call__(self, x, t, cond=None): return self.teacher(x, t, cond)


def test_a_duck_typed_teacher_resumes(tmp_path, done, straight):
    shutil.copytree(done, tmp_path / 'out')
    resumed = run(tmp_path / 'out', 6, Wrapped(ring()), resume=True)
    for k, v in straight.items(): assert torch.equal(v, resumed.state_dict()[k]), k
    with pytest.raises(ValueError, match="'teacher weights'"):
        run(tmp_path / 'out', 8, Wrapped(GaussianMixtureTeacher(torch.tensor(RING) * 2, std=0.2)), resume=True)


def test_damaged_log_lines_are_dropped(tmp_path, done):
    shutil.copytree(done, tmp_path / 'out')
    log = tmp_path / 'out' / 'log.jsonl'
    lines = log.read_text().splitlines()
    log.write_text('\n'.join([lines[0], '[1, 2]', '{"step": "2"}', '\xff\xfe', 'NaN', *lines[1:]]) + '\n')
    with pytest.warns(UserWarning, match='dropped 4 damaged line'): run(tmp_path / 'out', 6, resume=True)
    assert [json.loads(l)['step'] for l in log.read_text().splitlines()] == [1, 2, 3, 4, 5, 6]


SCRIPT = '''
import os, resource, signal, sys, torch
import boot_nb.train as T
from boot_nb.exact import GaussianMixtureTeacher
from boot_nb.student import MLPStudent
out, steps, what = sys.argv[1], int(sys.argv[2]), sys.argv[3]
replace, save = os.replace, T.save_checkpoint
def killed_replace(src, dst):
    # the new log written whole, not yet renamed
    if str(src).endswith('log.jsonl.tmp'): os.kill(os.getpid(), signal.SIGKILL)
    return replace(src, dst)
def limited_save(acc, step, *a, **k):
    # a full disk, from the second checkpoint
    if step == 4: resource.setrlimit(resource.RLIMIT_FSIZE, (64, resource.RLIM_INFINITY))
    return save(acc, step, *a, **k)
if what == 'kill-log': T.os.replace = killed_replace
if what == 'fsize': T.save_checkpoint = limited_save
torch.manual_seed(0)
try: T.distill(GaussianMixtureTeacher(torch.tensor(%r), std=0.2), MLPStudent((2,), hidden=16, depth=1), out_dir=out,
               steps=steps, resume=what in ('resume', 'kill-log'), **%r)
except OSError as e: print(e); sys.exit(3)
''' % (RING, RUN)


def script(tmp_path, *args):
    (tmp_path / 'run.py').write_text(SCRIPT)
    return subprocess.run([sys.executable, str(tmp_path / 'run.py'), *map(str, args)], env=ENV, capture_output=True,
                          text=True, timeout=300)


def test_a_kill_during_the_log_rewrite_loses_no_line(tmp_path, done, straight):
    out = tmp_path / 'out'
    shutil.copytree(done, out)
    before = (out / 'log.jsonl').read_text()
    r = script(tmp_path, out, 6, 'kill-log')
    assert r.returncode == -9, r.stderr[-2000:]
    # killed after writing the new log, before renaming it
    assert (out / 'log.jsonl').read_text() == before
    assert script(tmp_path, out, 6, 'resume').returncode == 0
    assert [json.loads(l)['step'] for l in (out / 'log.jsonl').read_text().splitlines()] == [1, 2, 3, 4, 5, 6]
    assert not (out / 'log.jsonl.tmp').exists()
    back = load_student(out / 'student').state_dict()
    for k, v in straight.items(): assert torch.equal(v, back[k]), k


def test_a_file_size_limit_during_a_save_keeps_the_previous_checkpoint(tmp_path, straight):
    out = tmp_path / 'out'
    r = script(tmp_path, out, 6, 'fsize')
    assert r.returncode == 3, r.stderr[-2000:]
    line = r.stdout.strip()
    assert '\n' not in line and 'Could not write checkpoint step 4' in line and 'File too large' in line, line
    assert f"The previous checkpoint, '{out / 'checkpoints' / 'step-00000002'}', is kept as it was" in line, line
    assert [s for s, _ in checkpoints(out)] == [2] and not list((out / 'checkpoints').glob('.tmp-*'))
    assert script(tmp_path, out, 6, 'resume').returncode == 0         # the limit gone: the run goes on from step 2
    back = load_student(out / 'student').state_dict()
    for k, v in straight.items(): assert torch.equal(v, back[k]), k


OOM = '''
import resource, sys
import boot_nb.cli
vm = int(next(l for l in open('/proc/self/status') if l.startswith('VmSize')).split()[1]) * 1024
# 2 GB more: any overcommit setting refuses 8 TB
resource.setrlimit(resource.RLIMIT_AS, (vm + 2**31, resource.RLIM_INFINITY))
sys.exit(boot_nb.cli.main(sys.argv[1:]))
'''


def test_out_of_memory_is_said_as_such(tmp_path):
    (tmp_path / 'oom.py').write_text(OOM)
    r = subprocess.run([sys.executable, str(tmp_path / 'oom.py'), 'distill', '--teacher', 'gmm2d', '--out',
                        str(tmp_path / 'o'), '--batch-size', str(10**12), '--hidden', '16', '--depth', '1',
                        '--no-progress', '--cpu'],
                       env=ENV, capture_output=True, text=True, timeout=300)
    err = r.stderr.strip().splitlines()
    assert r.returncode == 1 and err == ['boot-nb distill: error: out of memory: lower --batch-size (--grad-accum '
                                         'keeps the update the same).'], r.stderr[-2000:]
    with pytest.raises(torch.OutOfMemoryError, match='lower `batch_size`'):
        with pytest.MonkeyPatch.context() as m:
            # 400 TB: refused by the allocator at once
            m.setattr(torch, 'randn', lambda *a, **k: torch.empty(10**14))
            run(tmp_path / 'p', 2)


def test_the_command_resumes_with_its_recorded_options(tmp_path, capsys):
    out = tmp_path / 'out'
    tiny = ['--batch-size', '8', '--sample-every', '0', '--eval-samples', '0', '--no-progress', '--cpu',
            '--checkpoint-every', '2']
    assert main(['distill', '--teacher', 'gmm2d', '--hidden', '16', '--depth', '1', '--out', str(out), '--steps', '2',
                 *tiny]) == 0
    # the teacher and student from the record
    assert main(['distill', '--out', str(out), '--resume', '--steps', '4']) == 0
    assert [s for s, _ in checkpoints(out)] == [2, 4] and load_student(out / 'student').net.config['hidden'] == 16
    for args, says in [(['--hidden', '32'], '--resume with --hidden 32 (the run has 16)'),
                       (['--teacher', 'gmm8d'], '--resume with --teacher gmm8d (the run has gmm2d)'),
                       (['--lr', '0.5'], 'Cannot resume with different settings')]:
        with pytest.raises(SystemExit) as e: main(['distill', '--out', str(out), '--resume', '--steps', '6', *args])
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.count('\n') == 1 and says in err, err
    (out / 'command.json').write_text('{"teacher": "gmm2d", "hidden": 1')
    with pytest.raises(SystemExit) as e: main(['distill', '--out', str(out), '--resume', '--steps', '6'])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count('\n') == 1 and 'command.json: is not valid JSON' in err, err
    with pytest.raises(SystemExit) as e: main(['distill', '--out', str(tmp_path / 'new')])
    assert e.value.code == 2 and '--teacher is required' in capsys.readouterr().err


def test_prompt_files(tmp_path):
    """A path that does not exist is an error, not a prompt (in Python too); a binary or empty file is one line naming
    it."""
    with pytest.raises(FileNotFoundError, match='one prompt a line'):
        distill('digits-text', prompts=str(tmp_path / 'typo.txt'), steps=1, batch_size=2, out_dir=tmp_path / 'o',
                progress=False)
    assert not (tmp_path / 'o').exists()
    for data in [b'', b'\n \n', b'\x89PNG\r\n\x1a\n\x00\x00', b'a cat\x00']:
        (tmp_path / 'p.txt').write_bytes(data)
        with pytest.raises(BOOTFileError, match=r'p\.txt: (holds no prompt|is not UTF-8 text|is a binary file)'):
            context_set(tmp_path / 'p.txt')
    assert context_set(['typo.txt']).conds == ['typo.txt']                      # a list of prompts stays a list
