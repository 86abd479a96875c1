"The digits teachers that ship with boot_nb pass the classifier thresholds of issue 3, loaded by name and sampled with DDIM-50."
import pytest
import torch
from boot_nb.teachers import SHIPPED_TEACHERS, load_teacher
from boot_nb.teacher_training import evaluate_teacher

N_UNCOND, N_TEXT = 200, 60   # samples per teacher: under a minute each on a busy 2-core CPU


def test_shipped_teachers_are_small():
    sizes = {p.relative_to(SHIPPED_TEACHERS): p.stat().st_size for p in SHIPPED_TEACHERS.rglob('*.safetensors')}
    assert {p.parts[0] for p in sizes} == {'digits', 'digits-text'}
    assert sum(sizes.values()) <= 10 * 2**20, sizes


def test_digits_teacher_samples_are_digits():
    teacher = load_teacher('digits')
    assert teacher.prediction_type == 'v_prediction' and teacher.sample_shape == (1, 16, 16)
    x, _, scores = evaluate_teacher(teacher, n=N_UNCOND, seed=1234)
    assert x.shape == (N_UNCOND, 1, 16, 16)
    assert scores['confident'] >= 0.9, scores


def test_digits_text_teacher_draws_the_prompted_digit():
    teacher = load_teacher('digits-text')
    w = teacher.info['guidance_scale']
    x, labels, scores = evaluate_teacher(teacher, n=N_TEXT, guidance=w, seed=1234)
    assert scores['confident'] >= 0.9 and scores['correct'] >= 0.9, (w, scores)
