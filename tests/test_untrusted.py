"""Student folders and checkpoints are untrusted input: loading one runs no code. Two attacks that used to run a command
(a student folder naming `subprocess.run` as its network class; a checkpoint whose state files are a crafted pickle) now
stop with a clear error, and the file the command would create is not there."""
import json, os, pickle, re, shutil

import pytest
import torch

from boot_nb.exact import GaussianMixtureTeacher
from boot_nb.files import BOOTFileError
from boot_nb.student import BOOTStudent, MLPStudent
from boot_nb.student_files import load_student, save_student
from boot_nb.train import checkpoints, distill

torch.set_num_threads(1)
RUN = dict(steps=4, batch_size=16, checkpoint_every=2, sample_every=0, log_every=1, progress=False)
RING = torch.tensor([[2., 0], [0, 2], [-2, 0], [0, -2]])


def ring(): return GaussianMixtureTeacher(RING, std=0.2)
def small():
    torch.manual_seed(0)
    return MLPStudent((2,), hidden=16, depth=1)


class Touch:
    "A pickled object whose unpickling runs `touch path` (what an attacker would put in a shared checkpoint)."
    def __init__(self, path): self.path = path
    def __reduce__(self): return (os.system, (f'touch {self.path}',))


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    "A finished run: checkpoints at steps 2 and 4 and the final student folder."
    out = tmp_path_factory.mktemp('run') / 'run'
    distill(ring(), small(), out_dir=out, **RUN)
    return out


def test_student_folder_naming_subprocess_run_runs_nothing(tmp_path, run):
    folder, pwned = tmp_path / 'student', tmp_path / 'pwned'
    shutil.copytree(run / 'student', folder)
    cfg = json.loads((folder / 'boot_student.json').read_text())
    for net in [{'class': 'subprocess.run', 'format': 'safetensors',
                 'config': {'args': f'touch {pwned}', 'shell': True}},
                {'class': 'os.system', 'format': 'safetensors', 'config': {'command': f'touch {pwned}'}},
                {'class': 'diffusers.os.system', 'format': 'diffusers', 'config': {'command': f'touch {pwned}'}},
                {'class': 'transformers.pipeline', 'format': 'transformers'}]:
        (folder / 'boot_student.json').write_text(json.dumps({**cfg, 'net': net}))
        with pytest.raises(Exception) as info: load_student(folder)
        assert not pwned.exists(), f'loading the folder ran {net["class"]}'
        assert (info.type is BOOTFileError
                and f"network class '{net['class']}', which is not on the allow-list" in str(info.value))
    # and the message says what to do instead: build the network and pass it
    (folder / 'boot_student.json').write_text(json.dumps({**cfg,
                                                          'net': {'class': 'subprocess.run', 'format': 'safetensors'}}))
    with pytest.raises(ValueError, match=r'load_student\(folder, net=MyNet\(...\)\)'): load_student(folder)
    back = load_student(folder, net=MLPStudent((2,), hidden=16, depth=1))
    for k, v in load_student(run / 'student').state_dict().items(): assert torch.equal(back.state_dict()[k], v), k


def crafted_copy(run, tmp_path, name, form, pwned):
    """A copy of `run` with its last checkpoint alone (no good one to fall back on), its file `name` replaced by (or
    added as) a pickle that would touch `pwned`."""
    shutil.rmtree(tmp_path / 'run', ignore_errors=True); shutil.copytree(run, tmp_path / 'run')
    *older, (_, last) = checkpoints(tmp_path / 'run')
    for _, folder in older: shutil.rmtree(folder)
    f = last / name
    if form == 'pickle': f.write_bytes(pickle.dumps({'state': Touch(pwned)}))
    else: torch.save({'state': Touch(pwned), 'param_groups': []}, f)
    return tmp_path / 'run'


def refused(out, pwned, match):
    """resume=True from `out` runs no command (checked first) and stops with a BOOTFileError that matches `match`,
    moving nothing."""
    with pytest.raises(Exception) as info: distill(ring(), small(), out_dir=out, resume=True, **{**RUN, 'steps': 6})
    assert not pwned.exists(), 'resuming ran the command in the crafted pickle'
    assert info.type is BOOTFileError and re.search(match, str(info.value)), info.value
    assert [s for s, _ in checkpoints(out)] == [4] and not list((out / 'checkpoints').glob('damaged-*'))


@pytest.mark.parametrize('form', ['pickle', 'torch.save'])
def test_crafted_checkpoint_runs_nothing_on_resume(tmp_path, run, form):
    """Each binary state file of the last checkpoint (whatever the layout) in turn replaced by a pickle that would touch
    a file."""
    pwned, last = tmp_path / 'pwned', checkpoints(run)[-1][1]
    names = [str(f.relative_to(last)) for f in last.rglob('*')
             if f.suffix in ('.pt', '.bin', '.pkl', '.pth', '.safetensors')]
    assert len(names) >= 3, names
    for name in names:
        refused(crafted_copy(run, tmp_path, name, form, pwned), pwned, 'not what boot_nb writes|is not a whole')
    # accelerate's own RNG pickle, put back into a checkpoint, is refused before anything is read
    refused(crafted_copy(run, tmp_path, 'random_states_0.pkl', form, pwned), pwned,
            r'holds pickle files \(random_states_0.pkl\)')


def test_resume_unpickles_nothing(tmp_path, run, monkeypatch):
    """A resume reads safetensors and JSON, and accelerate's optimizer file with weights_only=True; no pickle.load(s) at
    all."""
    shutil.copytree(run, tmp_path / 'run')
    calls, load = [], torch.load
    def checked_load(*args, **kwargs):
        calls.append(kwargs.get('weights_only'))
        return load(*args, **kwargs)
    def refuse(*args, **kwargs): raise AssertionError('pickle.load(s) was called')
    monkeypatch.setattr(torch, 'load', checked_load)
    monkeypatch.setattr(pickle, 'load', refuse); monkeypatch.setattr(pickle, 'loads', refuse)
    distill(ring(), small(), out_dir=tmp_path / 'run', resume=True, **{**RUN, 'steps': 6})
    # optimizer.bin (and accelerate's try at its RNG pickle, absent)
    assert calls and all(w is True for w in calls), calls
    assert not list((tmp_path / 'run').rglob('*.pkl')) and not list((tmp_path / 'run').rglob('*.pt'))


def test_transformers_model_student_round_trip(tmp_path):
    """transformers model classes are on the allow-list: saved with save_pretrained, loaded with from_pretrained
    (safetensors)."""
    import transformers
    net = transformers.BertModel(transformers.BertConfig(vocab_size=11, hidden_size=8, num_hidden_layers=1,
                                                         num_attention_heads=1, intermediate_size=8))
    save_student(BOOTStudent(net, schedule=ring().schedule, sample_shape=(2,), t_min=0.01), tmp_path)
    assert json.loads((tmp_path / 'boot_student.json').read_text())['net']['format'] == 'transformers'
    back = load_student(tmp_path).net
    assert type(back) is transformers.BertModel
    for k, v in net.state_dict().items(): assert torch.equal(back.state_dict()[k], v), k
