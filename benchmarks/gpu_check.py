r"""GPU check: the two tutorials' real paths, end to end, in under 10 minutes on a machine with a CUDA GPU.

Loads `google/ddpm-cifar10-32`, distils it for a few hundred steps with the paper's recipe (LPIPS, bf16, checkpoints,
then a resumed run to show a disconnect costs nothing), and measures FID and KID (torchmetrics, Inception v3) of the
student and of the teacher's DDIM-1/2/4/10/50 on a few thousand samples against CIFAR-10's training images, plus the
samples/s of both samplers, the run's time and its peak GPU memory. Everything it prints is measured. A few hundred
steps do not make a good student: this checks that the path works and how fast it runs, not the final FID.

Then the text-to-image tutorial's path: Stable Diffusion 1.5 with the shipped prompts (`tutorials/prompts.txt`) and
guidance, a copy with gradient checkpointing distilled for a few dozen steps in bf16 with gradient accumulation, and
CLIP score (torchmetrics, CLIP ViT-B/16) of the student and the teacher's guided DDIM-25 on the same prompts and noise,
with their samples/s. `--path cifar10` or `--path text` runs one of the two.

On a machine with a CUDA GPU and internet (the teacher, AlexNet for LPIPS, the Inception weights and CIFAR-10
download on first use):

    python benchmarks/gpu_check.py                   # about 5-10 minutes on one H100 / A100 (estimate)

Offline (`--stand-in`): the same code on the stand-in teacher (`boot_nb.teacher_training.cifar10_standin`: the real
layout at 1/8 width, random weights), the no-download feature network `RandomFeatures` against the stand-in's own
DDIM-50 samples, and LPIPS with random AlexNet weights if torchvision and lpips import (else L2, said so):

    python benchmarks/gpu_check.py --stand-in
    python benchmarks/gpu_check.py --stand-in --device cpu --steps 4 --batch-size 4 --n-eval 16 \
        --text-steps 2 --n-prompts 4   # a smoke test

Offline, the text path uses the shipped `digits-text` teacher and its prompts, and a tiny random CLIP
(`save_tiny_clip`).
"""
import argparse, json, tempfile, time
from pathlib import Path

import torch

from boot_nb.metrics import (ImageDistances, RandomFeatures, cifar10_images, clip_score, inception_weights_file,
                             save_tiny_clip)
from boot_nb.quality import sample_batched
from boot_nb.sampling import ddim_sample, one_step_sample
from boot_nb.config import default_t_max
from boot_nb.student import make_student
from boot_nb.teacher_training import cifar10_standin
from boot_nb.teachers import GuidedTeacher, context_set, load_teacher
from boot_nb.train import distill

PROMPTS = Path(__file__).resolve().parents[1] / 'tutorials' / 'prompts.txt'


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    a = p.add_argument
    a('--stand-in', action='store_true',
      help='offline: the stand-in teacher and RandomFeatures instead of the hub teacher and Inception')
    a('--device', default=None, help='cuda or cpu (default: cuda if available)')
    a('--steps', type=int, default=300, help='distillation steps (default 300; the first half, then a resumed run)')
    a('--batch-size', type=int, default=128, help='distillation batch size (default 128)')
    a('--n-eval', type=int, default=2000, help='samples per sampler for FID/KID (default 2000)')
    a('--n-real', type=int, default=10000, help='reference images (default 10000 CIFAR-10 training images)')
    a('--eval-steps', type=int, nargs='+', default=[1, 2, 4, 10, 50],
      help='teacher DDIM steps to score (default 1 2 4 10 50)')
    a('--out', default=None, help='run folder (default: a temporary one)')
    a('--json', default=None, help='also write the measurements to this JSON file')
    a('--path', choices=['both', 'cifar10', 'text'], default='both', help='which tutorial path to check (default both)')
    a('--text-steps', type=int, default=40,
      help='text-to-image distillation steps (default 40, micro-batch 2, 4 accumulated)')
    a('--n-prompts', type=int, default=32, help='prompts scored by CLIP (default 32)')
    return p.parse_args(argv)


def lpips_setup(stand_in, folder):
    """(loss, lpips_weights, note): LPIPS with the real AlexNet (downloaded), or offline with random AlexNet weights;
    else L2."""
    try:
        import lpips, torchvision  # noqa: F401
    except Exception as e:     # a torchvision built for another torch fails with a RuntimeError
        if not stand_in: raise SystemExit('The real path needs lpips and a torchvision that matches your torch: '
                                          f'{type(e).__name__}: {e}')
        return 'l2', None, f'L2 (LPIPS cannot run here: {type(e).__name__}: {e})'
    if not stand_in:
        torchvision.models.alexnet(weights='DEFAULT')      # into torch hub's cache, where distill looks for it
        return 'lpips', None, 'LPIPS (AlexNet)'
    path = Path(folder) / 'alexnet-random.pth'
    torch.save(torchvision.models.alexnet().state_dict(), path)
    return 'lpips', str(path), 'LPIPS (random AlexNet weights: the code path, not the metric)'


@torch.no_grad()
def samples_per_s(sample, shape, n, device):
    x = torch.randn(n, *shape, device=device)
    sample(x[:2])
    if device == 'cuda': torch.cuda.synchronize()
    start = time.perf_counter(); sample(x)
    if device == 'cuda': torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


def text_check(args, device, run):
    """The text-to-image tutorial's path: a guided copy of SD 1.5 (offline: digits-text) distilled briefly, CLIP score
    and samples/s."""
    bf16 = device == 'cuda'
    try:
        teacher = load_teacher('digits-text' if args.stand_in else 'stable-diffusion-v1-5/stable-diffusion-v1-5',
                               device=device, dtype=torch.bfloat16 if bf16 else None)
        clip_model = save_tiny_clip(run / 'tiny-clip') if args.stand_in else 'openai/clip-vit-base-patch16'
        # fetch before training, so offline fails at once
        clip_score(torch.zeros(1, 3, 32, 32), ['a check'], clip_model)
    except (OSError, ImportError) as e:
        raise SystemExit(f'{e}\n(offline? run with --stand-in)')
    w = teacher.info['guidance_scale'] if args.stand_in else 7.5
    prompts = ([p for ps in teacher.info['prompts'].values() for p in ps] if args.stand_in
               else context_set(str(PROMPTS)).conds)
    t_min = max(0.002, 1 / teacher.schedule.num_train_timesteps)
    # trained in float32 under bf16 autocast
    student = make_student(teacher, None, t_min, default_t_max(teacher), 'text', w).float()
    student.net.enable_gradient_checkpointing()
    if device == 'cuda': torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    student = distill(teacher, student, steps=args.text_steps, batch_size=2, grad_accum=4, prompts=prompts, guidance=w,
                      lr=1e-4, t_min=t_min, out_dir=str(run / 'text'), checkpoint_every=args.text_steps, sample_every=0,
                      progress=False, mixed_precision='bf16' if bf16 else 'no', cpu=device == 'cpu')
    out = {'distill_s': time.perf_counter() - start}
    if device == 'cuda': out['peak_gpu_mem_gib'] = torch.cuda.max_memory_allocated() / 2**30
    cond = [prompts[i % len(prompts)] for i in range(args.n_prompts)]
    noise = torch.randn(len(cond), *teacher.sample_shape, generator=torch.Generator().manual_seed(0)).to(device)
    decode = getattr(teacher, 'decode', lambda x: x)
    rows = {}
    for name, sample in [('teacher DDIM-25, guided', lambda x, c: ddim_sample(GuidedTeacher(teacher, w), x, 25, c)),
                         ('BOOT student (1 step)', lambda x, c: one_step_sample(student, x, c))]:
        if device == 'cuda': torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.no_grad(): images = sample_batched(lambda x, c: decode(sample(x, c)), noise, cond, batch_size=8)
        if device == 'cuda': torch.cuda.synchronize()
        rows[name] = {'samples_per_s': len(cond) / (time.perf_counter() - t),
                      'clip': clip_score(images.expand(-1, 3, -1, -1), cond, clip_model, device=device)}
    out['rows'] = rows
    print(f'text-to-image: {args.text_steps} steps of 2 x 4 accumulated (guidance {w}) in {out["distill_s"]:.0f} s' +
          (f', peak GPU memory {out["peak_gpu_mem_gib"]:.1f} GiB' if 'peak_gpu_mem_gib' in out else ''))
    for k, v in rows.items(): print(f'  {k:26s} CLIP score {v["clip"]:7.2f}   {v["samples_per_s"]:8.2f} samples/s')
    return out


def main(argv=None):
    args = parse_args(argv)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    t0, out = time.perf_counter(), {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.path in ('both', 'text'):
            run = Path(args.out or tmp); run.mkdir(parents=True, exist_ok=True)
            out['text'] = text_check(args, device, run)
        if args.path == 'text': return _finish(args, out, t0, device)
        run = Path(args.out or tmp)
        run.mkdir(parents=True, exist_ok=True)
        try:
            teacher_name = str(cifar10_standin(run / 'teacher')) if args.stand_in else 'google/ddpm-cifar10-32'
            teacher = load_teacher(teacher_name, device=device)
            loss, lpips_weights, loss_note = lpips_setup(args.stand_in, run)
            feature = RandomFeatures() if args.stand_in else None
            if not args.stand_in: inception_weights_file()       # fetch before training, so offline fails at once
        except (OSError, ImportError) as e:
            raise SystemExit(f'{e}\n(offline? run with --stand-in)')
        print(f'teacher {teacher_name} on {device}' +
              (f' ({torch.cuda.get_device_name()})' if device == 'cuda' else '') +
              f'; loss {loss_note}')
        if device == 'cuda': torch.cuda.reset_peak_memory_stats()

        # distil in two calls: the second resumes from the first's last checkpoint, as after a disconnect
        half, start = max(args.steps // 2, 1), time.perf_counter()
        common = dict(batch_size=args.batch_size, loss=loss, lpips_weights=lpips_weights, out_dir=str(run / 'boot'),
                      resume=True, checkpoint_every=half, sample_every=0, seed=0, progress=False,
                      mixed_precision='bf16' if device == 'cuda' else 'no', cpu=device == 'cpu')
        distill(teacher, steps=half, **common)
        student = distill(teacher, steps=args.steps, **common)
        out['distill_s'] = time.perf_counter() - start
        out['s_per_step'] = out['distill_s'] / args.steps
        if device == 'cuda': out['peak_gpu_mem_gib'] = torch.cuda.max_memory_allocated() / 2**30
        print(f'distilled {args.steps} steps of batch {args.batch_size} in {out["distill_s"]:.0f} s '
              f'({out["s_per_step"]:.3f} s/step, resumed at step {half})' +
              (f', peak GPU memory {out["peak_gpu_mem_gib"]:.1f} GiB' if 'peak_gpu_mem_gib' in out else ''))

        shape, bs = teacher.sample_shape, 500 if device == 'cuda' else 16
        out['samples_per_s'] = {'teacher DDIM-50': samples_per_s(lambda x: ddim_sample(teacher, x, 50), shape,
                                                                 min(bs, args.n_eval), device),
                                'student': samples_per_s(lambda x: one_step_sample(student, x), shape,
                                                         min(bs, args.n_eval), device)}
        print('samples/s: ' + ', '.join(f'{k} {v:.1f}' for k, v in out['samples_per_s'].items()))

        start = time.perf_counter()
        if args.stand_in:
            real, ref = ddim_sample(teacher, torch.randn(args.n_eval, *shape,
                                                         generator=torch.Generator().manual_seed(2)).to(device), 50), \
                'stand-in DDIM-50 samples, random features'
        else:
            real, ref = cifar10_images(n=args.n_real)[0], f'{args.n_real} CIFAR-10 training images, Inception v3'
        dist = ImageDistances(real, feature, kid_subset_size=min(1000, args.n_eval // 2), batch_size=bs, device=device)
        noise = torch.randn(args.n_eval, *shape, generator=torch.Generator().manual_seed(3)).to(device)
        rows = {f'teacher DDIM-{k}': dist(sample_batched(lambda x, c: ddim_sample(teacher, x, k), noise, batch_size=bs))
                for k in args.eval_steps}
        rows['BOOT student (1 step)'] = dist(sample_batched(lambda x, c: one_step_sample(student, x), noise,
                                                            batch_size=bs))
        out['metrics'], out['metrics_s'] = rows, time.perf_counter() - start
        print(f'FID / KID of {args.n_eval} samples against {ref} ({out["metrics_s"]:.0f} s):')
        for k, v in rows.items(): print(f'  {k:24s} FID {v["fid"]:9.3f}   KID {v["kid"]:.5f} +- {v["kid_std"]:.5f}')
    out.update(teacher=teacher_name, loss=loss_note)
    return _finish(args, out, t0, device)


def _finish(args, out, t0, device):
    out.update(total_s=time.perf_counter() - t0, device=device, args=vars(args))
    print(f'total {out["total_s"]:.0f} s')
    if args.json: Path(args.json).write_text(json.dumps(out, indent=1))
    return out


if __name__ == '__main__':
    main()
