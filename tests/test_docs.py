"""The documentation builds offline with no warning (`sphinx-build -c docs . _site`: a broken link or docstring
fails it), and every page renders in a real browser.

Every notebook of nbs/ and tutorials/ gets a page; headless Chromium (`apt-get install chromium
chromium-driver`) loads each one from 127.0.0.1 and checks that MathJax typeset at least as many formulas
as the notebook's markdown holds, with no TeX error and no raw TeX left, that every image loaded
(naturalWidth > 0) and no fewer than the notebook's visible image outputs, and that nothing came from
outside the site. Every exported symbol has an API entry. README.md is generated from nbs/index.ipynb.
"""
import functools, importlib, json, os, re, shutil, subprocess, sys, threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nbformat, pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for d in ('nbs', 'tutorials') for p in (REPO/d).glob('*.ipynb') if not p.name.startswith('_'))
MATH_NB = REPO/'nbs'/'00_schedules.ipynb'


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp('docs')/'_site'
    r = subprocess.run([sys.executable, '-m', 'sphinx', '-q', '-W', '--keep-going', '-c', 'docs', '.', str(out)],
                       cwd=REPO, capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, f'the docs build failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}'
    return out


@pytest.fixture(scope='module')
def server(site):
    "Serve the built site (and a copy with MathJax removed, for the control) on 127.0.0.1."
    broken = site.parent/'no_mathjax'
    shutil.copytree(site, broken)
    (broken/'_static'/'tex-svg-full.js').unlink()
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *a): pass
    httpd = ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(Quiet, directory=str(site.parent)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}/'
    httpd.shutdown(); httpd.server_close()


@pytest.fixture(scope='module')
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    exe, driver = shutil.which('chromium'), shutil.which('chromedriver')
    if not (exe and driver):
        why = 'the pages are checked in Chromium: `apt-get install -y chromium chromium-driver`'
        if os.environ.get('BOOT_NB_REQUIRE_BROWSER'):
            pytest.fail(f'{why} (CI sets BOOT_NB_REQUIRE_BROWSER)', pytrace=False)
        pytest.skip(why)
    opts = webdriver.ChromeOptions()
    opts.binary_location = exe
    for a in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-sync',
              '--disable-background-networking', '--disable-component-update', '--disable-dev-shm-usage',
              '--window-size=1280,1600'):
        opts.add_argument(a)
    b = webdriver.Chrome(options=opts, service=Service(driver))
    # a long page's MathJax takes over a minute on a loaded 2-core machine; the HTTP client to chromedriver (120 s by
    # default) must wait longer than the script may take
    b.command_executor._client_config.timeout = 300
    b.set_script_timeout(240)
    yield b
    b.quit()


# What a page shows once MathJax is done: formulas, TeX errors, TeX left as text, images, resources loaded.
REPORT = r"""
const done = arguments[arguments.length - 1], t0 = Date.now();
// on a loaded machine chromedriver's get() can return while the page is still being parsed (no script tags, no images
// yet): wait for the whole document first
const parsed = new Promise(resolve => (function poll() {
  if (document.readyState === 'complete' || Date.now() - t0 > 200000) resolve(); else setTimeout(poll, 100);
})());
// MathJax's script is deferred and may not have run yet either, so wait for it where the page has one
const started = () => window.MathJax && MathJax.startup && MathJax.startup.promise;
let tag = null, head = 'no MathJax script on the page';
// a script file that is not there (HEAD not ok) will never start: no need to wait for it
const missing = parsed.then(() => {
  tag = document.querySelector('script[src*="mathjax"], script[src*="tex-"]');
  return tag ? fetch(tag.src, {method: 'HEAD'}).then(r => { head = r.status; return !r.ok; },
                                                     e => { head = String(e); return false; }) : true;
});
const waited = missing.then(gone => gone ? null : new Promise(resolve => (function poll() {
  if (started() || Date.now() - t0 > 200000) resolve();      // a file that is there: wait for it, up to 200 s
  else setTimeout(poll, 100);
})()));
waited.then(() => started() ? MathJax.startup.promise.then(() => 'ready') : 'not loaded').then(mathjax => {
  const text = document.querySelector('article').cloneNode(true);
  text.querySelectorAll('mjx-container, script, style, pre, code').forEach(e => e.remove());
  done({mathjax, state: document.readyState, head, ms: Date.now() - t0,
        formulas: document.querySelectorAll('mjx-container').length,
        errors: document.querySelectorAll('[data-mjx-error], mjx-merror').length,
        raw_tex: (text.textContent.match(/\$\$|\$[^$\s][^$]*\$|\\\(|\\\[/g) || []).slice(0, 5),
        images: [...document.images].map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0]),
        resources: performance.getEntriesByType('resource').map(r => r.name)});
});
"""


def render(browser, url):
    browser.get(url)
    return browser.execute_async_script(REPORT)


def notebook_math(nb):
    "Formulas (`$...$`, `$$...$$`) in a notebook's markdown outside code: a lower bound for the page."
    n = 0
    for c in nb.cells:
        if c.cell_type != 'markdown': continue
        s = re.sub(r'(?ms)^\s*(```|~~~).*?^\s*\1', ' ', c.source)
        s = re.sub(r'`[^`\n]*`', ' ', s).replace(r'\$', ' ')
        n += len(re.findall(r'\$\$.+?\$\$|\$[^$\n]+?\$', s, flags=re.S))
    return n


def notebook_images(nb):
    "Image outputs of the cells that nbdev does not hide."
    from nbdev.process import extract_directives
    return sum('image/png' in o.get('data', {}) or 'image/jpeg' in o.get('data', {})
               for c in nb.cells if c.cell_type == 'code' and 'hide' not in extract_directives(c, remove=False)
               for o in c.outputs)


def page(nb_path): return nb_path.relative_to(REPO).with_suffix('.html').as_posix()


def test_every_notebook_has_a_page(site):
    missing = [page(p) for p in NOTEBOOKS if not (site/page(p)).is_file()]
    assert not missing, f'notebooks without a page: {missing}'
    assert len(NOTEBOOKS) >= 12


@pytest.mark.parametrize('nb_path', NOTEBOOKS, ids=lambda p: p.stem)
def test_page_renders(nb_path, site, server, browser):
    nb = nbformat.read(nb_path, as_version=4)
    math, images = notebook_math(nb), notebook_images(nb)
    r = render(browser, server + '_site/' + page(nb_path))
    assert r['mathjax'] == 'ready' or not math, f'MathJax did not load: {r}'  # Sphinx adds it only where there is math
    assert r['formulas'] >= math, f"{r['formulas']} typeset formulas, the notebook has {math}"
    assert not r['errors'] and not r['raw_tex'], f"TeX errors: {r['errors']}, raw TeX left: {r['raw_tex']}"
    broken = [src for src, ok in r['images'] if not ok]
    assert not broken, f'images that did not load: {broken}'
    shown = sum('/_images/' in (src or '') for src, _ in r['images'])
    assert shown >= images, f'{shown} output images on the page, the notebook has {images}'
    outside = [u for u in r['resources'] if not u.startswith(server)]
    assert not outside, f'resources from outside the site: {outside}'


def test_pages_with_figures(site):
    "The committed figures reach the pages (a guard against a notebook set that checks no image)."
    with_images = [p.stem for p in NOTEBOOKS if notebook_images(nbformat.read(p, as_version=4))]
    assert len(with_images) >= 2, with_images


def test_math_check_fails_without_mathjax(server, browser):
    "Control: the same page with MathJax missing fails the checks above."
    r = render(browser, server + 'no_mathjax/' + page(MATH_NB))
    assert r['mathjax'] == 'not loaded' and r['formulas'] == 0 and r['raw_tex'], r


def test_root_opens_the_index(server, browser):
    browser.get(server + '_site/index.html')
    assert browser.current_url.endswith('/nbs/index.html') and 'boot_nb' in browser.title


def test_every_exported_symbol_has_an_api_entry(site):
    "Each name in a module's __all__, and each public method nbdev indexed, has an entry on some page."
    from boot_nb._modidx import d
    ids = {i for f in site.rglob('*.html') for i in re.findall(r'<dt class="sig[^>]*\sid="([^"]+)"', f.read_text())}
    want = {s for syms in d['syms'].values() for s in syms if not any(p.startswith('_') for p in s.split('.'))}
    want |= {f'{m}.{n}' for m in d['syms'] for n in importlib.import_module(m).__all__}
    assert len(want) > 150
    assert not want - ids, f'exported symbols without an API entry: {sorted(want - ids)}'


def test_readme_from_index(tmp_path):
    """scripts/readme.py writes what the notebook says (hidden cells and directives left out) and --check notices an
    edit."""
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell('# Title\n\n> A description with $a^2$'),
        nbformat.v4.new_code_cell('#| hide\nimport secret'),
        nbformat.v4.new_code_cell('#| export\n1 + 1', outputs=[nbformat.v4.new_output(
            'execute_result', data={'text/plain': '2'}, execution_count=1)])])
    nbformat.write(nb, tmp_path/'index.ipynb')
    run = lambda *a: subprocess.run([sys.executable, str(REPO/'scripts'/'readme.py'), '--nb',
                                     str(tmp_path/'index.ipynb'), '--out', str(tmp_path/'README.md'), *a],
                                    capture_output=True, text=True, timeout=120)
    assert run().returncode == 0
    txt = (tmp_path/'README.md').read_text()
    assert txt.startswith('# Title\n\n> A description with $a^2$\n\n<!-- WARNING'), txt
    assert 'secret' not in txt and '#|' not in txt and '```python\n1 + 1\n```' in txt and '    2' in txt, txt
    assert run('--check').returncode == 0
    (tmp_path/'README.md').write_text(txt + 'edited by hand\n')
    r = run('--check')
    assert r.returncode == 1 and 'out of date' in r.stderr, r.stderr
