"""The package's layout: no notebook's exported code imports a later notebook's module (the docs read in order), and
the path a teacher takes through `distill` is short. Each module the teacher is handed to must know the teacher
interface; set up once and then left to the loss, that knowledge stays in few places."""
import inspect, json, re, sys
from pathlib import Path

import torch

from boot_nb.exact import GaussianMixtureTeacher
from boot_nb.student import MLPStudent
from boot_nb.train import distill

torch.set_num_threads(1)


class Duck:
    "A teacher that is no boot_nb class: a mixture's denoiser behind the interface of DESIGN.md, nothing more."
    def __init__(self):
        self.inner = GaussianMixtureTeacher(torch.tensor([[2., 0.], [-2., 0.]]), std=0.3)
        self.schedule, self.sample_shape = self.inner.schedule, (2,)
    def __call__(self, x_t, t, cond=None): return self.inner(x_t, t)


def teacher_path(teacher, **settings):
    """(module, function) of every boot_nb call that is handed `teacher` during `distill(teacher, **settings)`, the
    teacher's own methods left out."""
    seen = []
    def tracer(frame, event, arg):
        if event != 'call' or not frame.f_globals.get('__name__', '').startswith('boot_nb.'): return None
        info = inspect.getargvalues(frame)
        args = [info.locals[a] for a in info.args] + ([info.locals[info.keywords]] if info.keywords else [])
        if info.args[:1] == ['self'] and args[0] is teacher: return None
        if any(a is teacher for a in args): seen.append((frame.f_globals['__name__'], frame.f_code.co_name))
        return None
    torch.manual_seed(0)
    student = MLPStudent((2,), hidden=16, depth=1)
    sys.settrace(tracer)
    try: distill(teacher, student, steps=1, batch_size=8, progress=False, **settings)
    finally: sys.settrace(None)
    return seen


def visits(path):
    "The modules in the order the teacher visits them, a module called again at once counted once."
    mods = [m for m, _ in path]
    return [m for i, m in enumerate(mods) if i == 0 or m != mods[i - 1]]


def test_teacher_crosses_modules_at_most_8_times(tmp_path):
    path = teacher_path(Duck(), out_dir=tmp_path, sample_every=0, diagnose_every=0)
    v = visits(path)
    assert len(v) - 1 <= 8, ' -> '.join(f'{m}.{f}' for m, f in path)
    # set up once (config, conditioning, student, checkpoints, the test batch), then the loss and its ODE step
    assert v[0] == 'boot_nb.train' and v.index('boot_nb.losses') < v.index('boot_nb.sampling'), v


def test_run_helpers_read_the_teacher_from_the_distiller(tmp_path):
    "With the sample grid and the per-t diagnostics on, the teacher still enters the training module only to be set up."
    v = visits(teacher_path(Duck(), out_dir=tmp_path, sample_every=1, diagnose_every=1, log_every=1))
    assert v.count('boot_nb.train') <= 2, v           # distill's set-up, and its test batch of both networks
    assert {'boot_nb.plots', 'boot_nb.sampling', 'boot_nb.losses'} <= set(v), v


NBS = Path(__file__).parent.parent / 'nbs'
# imported inside a function, on purpose, each documented in its notebook: `boot-nb` adds its subcommands from
# cli_jobs (which takes `check_teacher` from cli), and load_student reads a BOOTPipeline folder
LATER_ON_PURPOSE = {('10_cli', 'cli_jobs'), ('07a_student_files', 'pipeline')}


def exported_imports():
    "(notebook, module it imports, the module's notebook) for every `boot_nb.X` import in an exported cell."
    nbs = sorted(NBS.glob('[0-9]*.ipynb'))
    cells = {p.stem: [''.join(c['source']) for c in json.loads(p.read_text())['cells'] if c['cell_type'] == 'code']
             for p in nbs}
    home = {m.group(1): nb for nb, cs in cells.items() for c in cs if (m := re.search(r'#\| default_exp (\w+)', c))}
    return home, [(nb, mod, home[mod]) for nb, cs in cells.items() for c in cs if c.startswith('#| export')
                  for mod in re.findall(r'^\s*(?:from|import)\s+boot_nb\.(\w+)', c, re.M) if mod in home]


def test_no_notebook_exports_an_import_of_a_later_one():
    home, imports = exported_imports()
    assert len(home) > 20 and len(imports) > 40, (len(home), len(imports))        # the scan found the package
    later = {(nb, mod) for nb, mod, at in imports if at > nb}
    assert later <= LATER_ON_PURPOSE, sorted(later - LATER_ON_PURPOSE)
