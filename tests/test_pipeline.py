"""The one-step pipeline (boot_nb.pipeline) on what distill writes, and `boot-nb sample` / `boot-nb eval` on a student
folder copied elsewhere: the images are the student's own, bad input is one line and exit 2, crafted folders run
nothing."""
import json, shutil, subprocess, sys

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline
from PIL import Image

from boot_nb.cli import main
from boot_nb.pipeline import BOOTPipeline
from boot_nb.sampling import one_step_sample
from boot_nb.student_files import load_student
from boot_nb.train import distill
from boot_nb.teachers import load_teacher

torch.set_num_threads(1)
RUN = dict(steps=3, batch_size=4, sample_every=0, checkpoint_every=3, progress=False)


@pytest.fixture(scope='module')
def digits_run(tmp_path_factory):
    "A short distill run of the shipped digits teacher, its student folder copied elsewhere."
    root = tmp_path_factory.mktemp('pipe')
    student = distill(load_teacher('digits'), out_dir=root / 'run', **RUN)
    shutil.copytree(root / 'run' / 'student', root / 'copy')
    return student, root


def test_distill_writes_a_pipeline_equal_to_one_step_sample(digits_run):
    student, root = digits_run
    index = json.loads((root / 'copy' / 'model_index.json').read_text())
    assert index['_class_name'] == 'BOOTPipeline' and index['unet'] == ['diffusers', 'UNet2DModel']
    assert not list((root / 'copy').rglob('*.bin')) and list((root / 'copy').rglob('*.safetensors'))
    pipe = BOOTPipeline.from_pretrained(root / 'copy')
    eps = torch.randn(6, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad(): ref = one_step_sample(student, eps)
    assert torch.equal(pipe(latents=eps, output_type='latent').images, ref)
    assert torch.equal(pipe(latents=eps, output_type='pt').images, (ref / 2 + .5).clamp(0, 1))
    # load_student reads it too
    assert torch.equal(one_step_sample(load_student(root / 'copy'), eps), ref)
    out = pipe(batch_size=3, generator=torch.Generator().manual_seed(0), output_type='np').images
    assert out.shape == (3, 16, 16, 1) and 0 <= out.min() and out.max() <= 1
    again = pipe(batch_size=3, generator=torch.Generator().manual_seed(0), output_type='np').images
    # the generator decides the noise
    assert np.array_equal(out, again)
    with pytest.raises(ValueError, match=r'latents must have shape \(B, 1, 16, 16\)'):
        pipe(latents=torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match='takes no prompt'): pipe(prompt='a cat')
    with pytest.raises(ValueError, match="output_type must be"): pipe(output_type='jpeg')
    pipe.save_pretrained(root / 'resaved')
    assert torch.equal(BOOTPipeline.from_pretrained(root / 'resaved')(latents=eps, output_type='latent').images, ref)


def test_text_student_pipeline_with_prompts(tmp_path):
    teacher = load_teacher('digits-text')
    student = distill(teacher, out_dir=tmp_path / 'run', prompts=['a handwritten digit three', 'the number seven'],
                      guidance=2., **RUN)
    pipe = BOOTPipeline.from_pretrained(tmp_path / 'run' / 'student')
    assert pipe.config.boot_config['text_pipeline'] == 'IFPipeline' and pipe.config.boot_config['guidance'] == 2.
    prompts = ['the number seven', 'a handwritten digit three', 'the number seven']
    eps = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(4))
    with torch.no_grad(): ref = one_step_sample(student, eps, prompts)
    assert torch.equal(pipe(prompt=prompts, latents=eps, output_type='latent').images, ref)
    other = pipe(prompt=['a handwritten digit three'] * 3, latents=eps, output_type='latent').images
    # the prompt reaches the network
    assert not torch.equal(other, ref)


def test_crafted_pipeline_folders_run_nothing(digits_run, tmp_path):
    _, root = digits_run
    evil, marker = tmp_path / 'evil', tmp_path / 'pwned'
    shutil.copytree(root / 'copy', evil)
    good = json.loads((evil / 'model_index.json').read_text())
    (tmp_path / 'evilmod.py').write_text(f'open({str(marker)!r}, "w").write("ran")\nclass Net: pass\n')
    sys.path.insert(0, str(tmp_path))
    try:
        for name, entry in [('unet', ['evilmod', 'Net']), ('unet', ['os', 'system']), ('vae', ['evilmod', 'Net']),
                            ('unet', ['diffusers', 'StableDiffusionPipeline']),
                            ('tokenizer', ['transformers', 'AutoTokenizer']),
                            ('feature_extractor', ['evilmod', 'Net'])]:
            (evil / 'model_index.json').write_text(json.dumps({**good, name: entry}))
            with pytest.raises(ValueError, match=f"component '{name}' .* not on the allow-list") as info:
                BOOTPipeline.from_pretrained(evil)
            assert 'model_index.json' in str(info.value) and not marker.exists()
        (evil / 'model_index.json').write_text(json.dumps({**good, '_class_name': 'StableDiffusionPipeline'}))
        with pytest.raises(ValueError, match='does not describe a BOOTPipeline'): BOOTPipeline.from_pretrained(evil)
        (evil / 'model_index.json').write_text(json.dumps(good))
        # diffusers' generic loader knows no BOOTPipeline: it refuses the folder and imports nothing of it
        with pytest.raises(AttributeError, match='BOOTPipeline'): DiffusionPipeline.from_pretrained(evil)
        assert not marker.exists()
    finally: sys.path.remove(str(tmp_path))


def test_boot_nb_sample_and_eval_on_a_copied_folder(digits_run, tmp_path, capsys):
    student, root = digits_run
    assert main(['sample', '--student', str(root / 'copy'), '--n', '5', '--seed', '1', '--out',
                 str(tmp_path / 'g.png')]) == 0
    assert 'ms a sample' in capsys.readouterr().out
    assert Image.open(tmp_path / 'g.png').size == (3 * 17 + 1, 2 * 17 + 1)        # make_grid: 3 a row, 1-pixel padding
    assert main(['sample', '--student', str(root / 'copy'), '--n', '5', '--seed', '1', '--format', 'npz', '--out',
                 str(tmp_path / 's.npz')]) == 0
    x = np.load(tmp_path / 's.npz')['samples']
    noise = torch.randn(5, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(): ref = (one_step_sample(student, noise) / 2 + .5).clamp(0, 1)
    np.testing.assert_array_equal(x, ref.numpy())
    assert main(['eval', '--student', str(root / 'copy'), '--teacher', 'digits', '--n', '4', '--out',
                 str(tmp_path / 'e')]) == 0
    rows = json.loads((tmp_path / 'e' / 'quality.json').read_text())['rows']
    assert ([r['method'] for r in rows][:5] == [f'teacher DDIM-{k}' for k in (1, 2, 4, 10, 20)]
            and (tmp_path / 'e' / 'quality.png').exists())
    by_t = json.loads((tmp_path / 'e' / 'quality.json').read_text())['by_t']       # L^BS along t, also printed
    assert len(by_t['t']) == len(by_t['bs']) == 8 and 'L^BS along t' in capsys.readouterr().out



def test_boot_nb_eval_shows_progress_and_reuses_the_teachers_samples(digits_run, tmp_path, capsys, monkeypatch):
    """A second `boot-nb eval` against the same teacher runs no teacher sampler (they are cached) and gives the same
    table."""
    import boot_nb.sampling
    monkeypatch.setenv('BOOT_NB_CACHE', str(tmp_path / 'cache'))
    argv = ['eval', '--student', str(digits_run[1] / 'copy'), '--teacher', 'digits', '--n', '6', '--out']
    assert main(argv + [str(tmp_path / 'a')]) == 0
    err = capsys.readouterr().err
    assert 'teacher ODE (Heun-50)' in err and 'teacher DDIM-20' in err and 'BOOT student' in err      # a bar per phase
    assert len(list((tmp_path / 'cache' / 'quality').glob('*.safetensors'))) == 1
    def refuse(*a, **k): raise AssertionError('the teacher was sampled again')
    monkeypatch.setattr(boot_nb.sampling, 'heun_sample', refuse)
    monkeypatch.setattr(boot_nb.sampling, 'ddim_sample', refuse)
    assert main(argv + [str(tmp_path / 'b')]) == 0
    assert 'teacher DDIM-20' not in capsys.readouterr().err
    assert (tmp_path / 'a' / 'quality.json').read_text() == (tmp_path / 'b' / 'quality.json').read_text()


def test_boot_nb_eval_reuses_what_distills_report_computed(tmp_path, monkeypatch):
    """The teacher used for training (its schedule's device cache filled) keys the same cache entry as a freshly loaded
    one."""
    import boot_nb.sampling
    monkeypatch.setenv('BOOT_NB_CACHE', str(tmp_path / 'cache'))
    assert main(['distill', '--teacher', 'digits', '--out', str(tmp_path / 'run'), '--steps', '2', '--batch-size', '2',
                 '--eval-samples', '6', '--sample-every', '0', '--no-progress']) == 0
    def refuse(*a, **k): raise AssertionError('the teacher was sampled again')
    monkeypatch.setattr(boot_nb.sampling, 'heun_sample', refuse)
    monkeypatch.setattr(boot_nb.sampling, 'ddim_sample', refuse)
    assert main(['eval', '--student', str(tmp_path / 'run' / 'student'), '--teacher', 'digits', '--n', '6', '--out',
                 str(tmp_path / 'e'), '--no-progress']) == 0
    assert json.loads((tmp_path / 'e' / 'quality.json').read_text())['rows'] == json.loads(
        (tmp_path / 'run' / 'quality.json').read_text())['rows']

@pytest.mark.parametrize('argv, says', [
    (['sample', '--student', 'no/such/folder'], 'is not a folder'),
    (['sample', '--student', '{copy}', '--prompt', 'seven'], 'takes no prompt'),
    (['sample', '--student', '{copy}', '--n', '0'], '--n and --batch-size must be at least 1'),
    (['sample', '--student', '{copy}', '--out', 'no/such/dir/g.png'], 'does not exist'),
    (['sample', '--student', '{copy}', '--prompts', 'missing.txt'], 'No prompt file'),
    (['eval', '--student', '{copy}', '--teacher', 'gmm2d', '--n', '4'],
     'pass the teacher the student was distilled from'),
    (['eval', '--student', '{copy}', '--teacher', 'nonexistent'], 'is not an exact teacher'),
])
def test_bad_input_is_one_line_and_exit_2(digits_run, tmp_path, argv, says):
    _, root = digits_run
    argv = [a.replace('{copy}', str(root / 'copy')) for a in argv]
    r = subprocess.run([sys.executable, '-m', 'boot_nb.cli', *argv], capture_output=True, text=True, cwd=tmp_path,
                       timeout=300)
    assert r.returncode == 2, r.stderr
    assert says in r.stderr and len(r.stderr.strip().splitlines()) == 1 and 'Traceback' not in r.stderr, r.stderr


def test_text_student_of_a_teacher_without_a_pipeline_encoder_keeps_the_student_layout(tmp_path):
    """A duck-typed text teacher whose prompts are its own callable has no text encoder to ship: save_trained writes
    save_student's folder."""
    import types
    from boot_nb.pipeline import save_trained
    from boot_nb.student import make_student
    teacher = load_teacher('digits-text')
    student = make_student(teacher, None, t_min=1e-3, t_max=1., kind='text', guidance=None)
    duck = types.SimpleNamespace(prompts=teacher.prompts.encode, schedule=teacher.schedule,
                                 sample_shape=teacher.sample_shape)
    save_trained(student, duck, tmp_path / 's')
    assert (tmp_path / 's' / 'boot_student.json').exists() and not (tmp_path / 's' / 'model_index.json').exists()
    save_trained(student, teacher, tmp_path / 'p')
    assert (tmp_path / 'p' / 'model_index.json').exists()
