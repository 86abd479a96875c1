"""The documentation pages build offline and render in a real browser, math included.

Builds the pages for `nbs/index.ipynb` and `nbs/00_schedules.ipynb` with `scripts/build_docs.py`
into a temporary folder, serves them on 127.0.0.1 and loads them in headless Chromium
(`apt-get install chromium`; set CHROMIUM=/path/to/chrome to use another build). Checks: the page
title and headings are in the rendered DOM, MathJax (the local copy; nothing may come from a CDN)
typeset every formula without errors and no raw TeX is left, every file the page asked for was
served, and a screenshot is not blank. A control run without MathJax shows the math check fails.
"""
import functools, importlib.util, json, os, re, shutil, subprocess, sys, tempfile, threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO/'scripts'/'build_docs.py'
NBS = REPO/'nbs'
MATH_NB = '00_schedules'
CHROMIUM_NAMES = ('chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable', 'chrome')


def _load_script():
    spec = importlib.util.spec_from_file_location('build_docs', SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bd = _load_script()


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(scope='module')
def chromium():
    exe = os.environ.get('CHROMIUM') or next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
    if not exe:
        pytest.fail('Chromium is needed to check that the docs render: install it with '
                    '`apt-get update && apt-get install -y chromium` (CI installs it), '
                    'or set CHROMIUM=/path/to/chrome', pytrace=False)
    return exe


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp('site')/'_site'
    r = subprocess.run([sys.executable, str(SCRIPT), '--out', str(out), '--only', 'index', MATH_NB],
                       cwd=REPO, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, f'build_docs.py failed:\n{r.stdout}\n{r.stderr}'
    pages = {Path(p['src']).stem: p for p in json.loads((out/'pages.json').read_text())}
    return out, pages


class _Server:
    "Serve a folder on 127.0.0.1 in a thread, recording every request and its status."
    def __init__(self, root):
        self.log = []
        log = self.log
        class H(SimpleHTTPRequestHandler):
            def log_request(self, code='-', size='-'): log.append((self.path, int(code)))
            def log_message(self, *a): pass
        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(H, directory=str(root)))
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}/'
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self): self.httpd.shutdown(); self.httpd.server_close()


@pytest.fixture()
def serve():
    servers = []
    def _serve(root):
        servers.append(_Server(root)); return servers[-1]
    yield _serve
    for s in servers: s.close()


def run_chromium(exe, url, *extra, timeout=60):
    with tempfile.TemporaryDirectory(prefix='chromium-profile-') as profile:
        cmd = [exe, '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
               '--disable-background-networking', '--disable-component-update', '--disable-sync',
               '--disable-dev-shm-usage', '--disable-extensions', '--hide-scrollbars', '--mute-audio',
               f'--user-data-dir={profile}', '--virtual-time-budget=20000', *extra, url]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f'chromium failed ({r.returncode}):\n{r.stderr[-3000:]}'
    return r.stdout


# ----------------------------------------------------------------------------- checks

def _strip(dom, *tags):
    for t in tags: dom = re.sub(rf'<{t}\b.*?</{t}>', ' ', dom, flags=re.S | re.I)
    return dom


def math_problems(dom, expected):
    "Why the math in a rendered DOM is not right (empty list when it is)."
    probs = []
    if 'data-mathjax="ready"' not in dom: probs.append('MathJax did not finish (no data-mathjax="ready")')
    n = len(re.findall(r'<mjx-container\b', dom))
    if n < expected: probs.append(f'{n} typeset formulas, expected at least {expected}')
    svg = len(re.findall(r'<mjx-container\b[^>]*>\s*<svg\b', dom))
    if svg < n: probs.append(f'{n - svg} formulas without SVG output')
    m = re.search(r'data-mathjax-errors="(\d+)"', dom)
    errs = re.findall(r'\sdata-mjx-error="([^"]*)"', dom)
    if (m and m.group(1) != '0') or errs:
        probs.append(f'TeX errors: {errs[:5]}')
    text = _strip(dom, 'mjx-container', 'script', 'style', 'pre', 'code', 'head')
    text = re.sub(r'<[^>]+>', ' ', text)
    raw = re.findall(r'\$\$|\$[^$\s][^$]*?\\[A-Za-z]+[^$]*\$|\\\(|\\\[', text)
    if raw: probs.append(f'raw TeX left in the page: {raw[:5]}')
    return probs


def count_math(nb_path):
    "Formulas in a notebook's markdown cells, `$...$` and `$$...$$` outside code (a lower bound)."
    nb = json.loads(Path(nb_path).read_text())
    n = 0
    for c in nb['cells']:
        if c['cell_type'] != 'markdown': continue
        s = ''.join(c['source'])
        s = re.sub(r'(?ms)^\s*(```|~~~).*?^\s*\1', ' ', s)
        s = re.sub(r'`[^`\n]*`', ' ', s).replace(r'\$', ' ')
        n += len(re.findall(r'\$\$.+?\$\$|\$[^$\n]+?\$', s, flags=re.S))
    return n


def check_png(path, min_size=(800, 600)):
    from PIL import Image
    im = Image.open(path).convert('RGB')
    assert im.size[0] >= min_size[0] and im.size[1] >= min_size[1], im.size
    small = im.resize((im.size[0]//4, im.size[1]//4))
    colors = small.getcolors(maxcolors=1 << 20)
    bg = max(colors)[1]
    ink = sum(c for c, rgb in colors if sum(abs(a - b) for a, b in zip(rgb, bg)) > 60) / (small.size[0]*small.size[1])
    assert len(colors) > 50 and ink > 0.01, f'screenshot looks blank: {len(colors)} colours, {ink:.2%} ink'


def check_page(chromium, site, serve, tmp_path, stem):
    out, pages = site
    page = pages[stem]
    src_html = (out/page['href']).read_text()
    # nothing may come from outside the site (no CDN): scripts, styles, images, fonts
    ext = re.findall(r'<(?:script|img|iframe)\b[^>]*\ssrc="((?:https?:)?//[^"]*)"|<link\b[^>]*\shref="((?:https?:)?//[^"]*)"',
                     src_html)
    assert not ext, f'{page["href"]} loads resources from outside the site: {ext}'
    srv = serve(out)
    dom = run_chromium(chromium, srv.url + page['href'], '--dump-dom')
    shot = tmp_path/f'{stem}.png'
    run_chromium(chromium, srv.url + page['href'], f'--screenshot={shot}', '--window-size=1280,1600',
                 '--run-all-compositor-stages-before-draw')
    bad = [(p, c) for p, c in srv.log if c >= 400 and p != '/favicon.ico']
    assert not bad, f'requests that failed: {bad}'
    assert any(p.endswith(bd.MATHJAX_FILE) for p, _ in srv.log), 'the local MathJax was not requested'
    # title and headings
    title = page['title']
    assert re.search(rf'<title>\s*{re.escape(html_escape(strip_tex(title)))}\s*</title>', dom), f'no <title> {title!r}'
    h1 = re.search(r'<h1\b[^>]*class="title"[^>]*>(.*?)</h1>', dom, flags=re.S)
    assert h1 and strip_tags(h1.group(1)).strip(), 'no rendered page title'
    assert re.search(r'<nav\b[^>]*class="bn-sidebar"', dom) and 'href="index.html"' in dom, 'no sidebar'
    check_png(shot)
    keep = os.environ.get('BOOT_NB_DOCS_SHOTS')  # a folder to keep the screenshots in, to look at them
    if keep: Path(keep).mkdir(parents=True, exist_ok=True); shutil.copy(shot, Path(keep)/shot.name)
    return dom, shot


def html_escape(s):
    import html
    return html.escape(s, quote=False)


def strip_tex(s): return re.sub(r'\$([^$]*)\$', r'\1', s)
def strip_tags(s): return re.sub(r'<[^>]+>', '', s)


# ----------------------------------------------------------------------------- tests

def test_index_page_renders(chromium, site, serve, tmp_path):
    dom, _ = check_page(chromium, site, serve, tmp_path, 'index')
    assert 'data-mathjax="ready"' in dom, 'MathJax did not run on the index page'
    idx = NBS/'index.ipynb'
    probs = math_problems(dom, count_math(idx) if idx.exists() else 0)
    assert not probs, probs
    # the index links to every page built
    for p in site[1].values(): assert f'href="{p["href"]}"' in dom, f'index has no link to {p["href"]}'


def test_math_notebook_page_renders(chromium, site, serve, tmp_path):
    dom, shot = check_page(chromium, site, serve, tmp_path, MATH_NB)
    expected = count_math(NBS/f'{MATH_NB}.ipynb')
    assert expected > 0, f'{MATH_NB}.ipynb has no math to check'
    probs = math_problems(dom, expected)
    assert not probs, probs
    # markdown headings of the notebook made it into the page
    nb = json.loads((NBS/f'{MATH_NB}.ipynb').read_text())
    heads = [m for c in nb['cells'] if c['cell_type'] == 'markdown'
             for m in re.findall(r'^##\s+(.+?)\s*$', ''.join(c['source']), flags=re.M)]
    text = strip_tags(_strip(dom, 'script', 'style'))
    for h in heads:
        words = [w for w in re.findall(r'[A-Za-z]{3,}', strip_tex(h))]
        assert all(w in text for w in words), f'heading {h!r} missing from the page'


def test_math_check_fails_without_mathjax(chromium, site, serve, tmp_path):
    "Control: the same page with the MathJax script removed must fail the math check."
    out, pages = site
    broken = tmp_path/'broken'
    shutil.copytree(out, broken)
    (broken/'_static'/'mathjax'/bd.MATHJAX_FILE).unlink()
    srv = serve(broken)
    dom = run_chromium(chromium, srv.url + pages[MATH_NB]['href'], '--dump-dom')
    probs = math_problems(dom, count_math(NBS/f'{MATH_NB}.ipynb'))
    assert any('did not finish' in p for p in probs) and any('raw TeX' in p for p in probs), probs


# ----------------------------------------------------------------------------- no browser needed

def test_quarto_markdown_translation():
    md = ('::: {.callout-note}\nSee [src](https://x.org/a.py#L1){target="_blank" style="float:right"}.\n:::\n'
          '## Heading {#sec .unnumbered}\n```python\n::: not a div\n```')
    h = bd.quarto_md(md, html_out=True)
    assert '<div class="callout-note callout">' in h and '</div>' in h
    assert '<a href="https://x.org/a.py#L1" target="_blank" style="float:right">src</a>' in h
    assert '## Heading\n' in h and '::: not a div' in h
    g = bd.quarto_md(md, html_out=False)
    assert g.startswith('> [!NOTE]\n> See [src](https://x.org/a.py#L1).') and '{target' not in g
    opts, src = bd.split_options('#| echo: false\n#| code-fold: show\nx = 1')
    assert opts == {'echo': 'false', 'code-fold': 'show'} and src == 'x = 1'
    assert bd._pandoc_id('Linear-$%5Cbeta$-(continuous-DDPM)'.replace('-', ' ')) == 'linear-beta-continuous-ddpm'


def test_readme_from_index(tmp_path):
    "README.md generation (`--readme`) from an index notebook, without Quarto."
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
    nbs = tmp_path/'nbs'
    nbs.mkdir()
    nb = new_notebook(cells=[
        new_code_cell('#| hide\nimport math'),
        new_markdown_cell('# Some title\n\n> A description'),
        new_markdown_cell('Math $a^2$.\n\n::: {.callout-tip}\nA tip.\n:::'),
        new_code_cell('#| echo: false\nprint(1)', outputs=[new_output('stream', name='stdout', text='1\n')]),
        new_code_cell('1 + 1', outputs=[new_output('execute_result', data={'text/plain': '2'}, execution_count=1)])])
    nbformat.write(nb, nbs/'index.ipynb')
    readme = tmp_path/'README.md'
    r = subprocess.run([sys.executable, str(SCRIPT), '--path', str(nbs), '--readme', str(readme)],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    txt = readme.read_text()
    assert txt.startswith('# Some title\n\n> A description\n'), txt
    assert 'Math $a^2$.' in txt and '> [!TIP]\n> A tip.' in txt and 'import math' not in txt
    assert 'print(1)' not in txt and '    1\n' in txt and '```python\n1 + 1\n```' in txt
    readme.write_text(txt + 'edited by hand\n')
    r = subprocess.run([sys.executable, str(SCRIPT), '--path', str(nbs), '--readme', str(readme), '--check'],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and 'out of date' in r.stderr, (r.returncode, r.stderr)
