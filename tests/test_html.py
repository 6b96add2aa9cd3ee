"""The self-contained HTML reports (kaudit/report/html.py), checked as text and in a real browser.

Browser tests (marker ``browser``) drive Debian's headless Chromium (``.ci/browser.sh`` installs
it) and are skipped when /usr/bin/chromium is not there.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

import kaudit
from kaudit.cli import main
from kaudit.inspection import inspect
from kaudit.report.html import checkpoint_html, diff_html, inspect_html

from .conftest import AFTER, BEFORE, CONVNET, CONVNET_K3

EVIL = "<img src=x onerror=alert(1)>"


def changed_convnet(tmp_path) -> str:
    """The convnet fixture with filter 2 of conv1 and all of conv2 changed."""
    dst = tmp_path / "b.h5"
    shutil.copy(CONVNET, dst)
    with h5py.File(dst, "r+") as f:
        k = f["model_weights/conv1/conv1/kernel:0"]
        a = k[...]
        a[..., 2] += 0.5
        k[...] = a
        k = f["model_weights/conv2/conv2/kernel:0"]
        k[...] = k[...] * 1.1
    return str(dst)


def evil_pair(tmp_path) -> tuple[str, str]:
    """Two weights-only legacy files whose layer name is markup (names come from untrusted files)."""
    out = []
    for i, name in enumerate(("a.h5", "b.h5")):
        path = tmp_path / name
        with h5py.File(path, "w") as f:
            f.attrs["keras_version"] = "2.21.0"
            f.attrs["layer_names"] = np.array([EVIL.encode()])
            g = f.create_group(EVIL)
            g.attrs["weight_names"] = np.array([f"{EVIL}/kernel:0".encode()])
            g.create_dataset(f"{EVIL}/kernel:0", data=np.full((3, 3, 3, 2), float(i), np.float32))
        out.append(str(path))
    return out[0], out[1]


def images(doc: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', doc)]


def tbody_rows(doc: str) -> list[str]:
    body = doc.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr[ >].*?</tr>", body, flags=re.DOTALL)


# -- the document -------------------------------------------------------------------------------------


def test_diff_html_structure_finetune():
    result = kaudit.diff(BEFORE, AFTER)
    doc = diff_html(result)
    assert doc.startswith("<!DOCTYPE html>")
    assert f"<title>kaudit diff: {BEFORE} vs {AFTER}</title>" in doc
    assert 'class="verdict fail">FAIL<' in doc
    assert "16 pairs: 12 identical, 4 changed" in doc
    assert doc.count("<li>tolerance atol=0") == 4  # the failures
    rows = tbody_rows(doc)
    assert len(rows) == 16  # every pair is in the table ...
    assert sum('class="st-identical' in r for r in rows) == 12
    assert 'class="kd hide-identical"' in doc  # ... identical ones hidden until ticked
    assert "<script>" in doc and 'type="search"' in doc
    assert not images(doc)  # frozen backbone: no changed conv kernel
    # self-contained: nothing fetched
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", doc, flags=re.IGNORECASE)
    assert "<link" not in doc and "@import" not in doc and "url(" not in doc
    # --all shows identical rows from the start
    assert 'class="kd"' in diff_html(result, all_rows=True)


def test_diff_html_embeds_montages(tmp_path):
    b = changed_convnet(tmp_path)
    result = kaudit.diff(CONVNET, b, pictures=24)
    assert not images(kaudit.diff(CONVNET, b).render("html"))  # none drawn unless asked for
    doc = result.render("html")
    pngs = images(doc)
    assert len(pngs) == 2 and 'data-images="2"' in doc
    for data in pngs:
        with Image.open(io.BytesIO(data)) as im:
            assert im.format == "PNG" and im.width > 100 and im.height > 100
    assert "Changed conv kernels" in doc
    capped = diff_html(result, max_montages=1)
    assert len(images(capped)) == 1 and "first 1 of 2" in capped
    assert not images(diff_html(result, montages=False))
    assert result._repr_html_().count("<img ") == 2


def test_report_never_reopens_the_files(tmp_path):
    """The montages are drawn while the diff has both files open; the renderer takes data only."""
    b = changed_convnet(tmp_path)
    a = str(tmp_path / "a.h5")
    shutil.copy(CONVNET, a)
    result = kaudit.diff(a, b, pictures=1)
    os.unlink(a)
    os.unlink(b)
    doc = diff_html(result)
    assert len(images(doc)) == 1 and len(tbody_rows(doc)) == 15 and "first 1 of 2" in doc


def test_escaping_untrusted_names(tmp_path):
    a, b = evil_pair(tmp_path)
    result = kaudit.diff(a, b, pictures=24)
    result = dataclasses.replace(result, notes=result.notes + (f"note with {EVIL}",))
    doc = diff_html(result)
    assert EVIL not in doc
    assert "&lt;img src=x onerror=alert(1)&gt;/kernel" in doc
    assert len(images(doc)) == 1  # the montage of the changed kernel is there
    assert re.search(r'alt="A \| B \| B - A montage of &lt;img', doc)
    ckpt = kaudit.load(a)
    assert EVIL not in checkpoint_html(ckpt) and EVIL not in inspect_html(inspect(ckpt))
    ckpt.close()


def test_inspect_and_checkpoint_html():
    doc = inspect_html(inspect(CONVNET_K3))
    assert f"<title>kaudit inspect: {CONVNET_K3}</title>" in doc
    assert len(tbody_rows(doc)) == 15
    assert "Total params:" in doc and ">min<" in doc
    with kaudit.load(CONVNET) as ckpt:
        frag = ckpt._repr_html_()
    assert frag.startswith('<div class="kaudit-ckpt">') and "<script" not in frag
    assert frag.count("<tr>") == 16 and "conv1/kernel" in frag and "Total params:" in frag


def test_cli_html(tmp_path, capsys):
    b = changed_convnet(tmp_path)
    out = tmp_path / "report.html"
    assert main(["diff", CONVNET, b, "--format", "html", "-o", str(out)]) == 1
    doc = out.read_text(encoding="utf-8")
    assert "<title>kaudit diff:" in doc and len(images(doc)) == 2
    out2 = tmp_path / "inspect.html"
    assert main(["inspect", CONVNET, "--format", "html", "-o", str(out2)]) == 0
    assert "kaudit inspect" in out2.read_text(encoding="utf-8")


# -- in a real browser ------------------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"

browser = pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason="chromium not installed (run .ci/browser.sh)")


def chromium(tmp_path, url: str, *extra: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1400,1000",
        *extra,
        url,
    ]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)


def dump_dom(tmp_path, page: Path) -> str:
    proc = chromium(tmp_path, page.as_uri(), "--virtual-time-budget=5000", "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.browser
@browser
def test_browser_renders_diff_report(tmp_path):
    b = changed_convnet(tmp_path)
    page = tmp_path / "report.html"
    page.write_text(kaudit.diff(CONVNET, b, pictures=24).render("html"), encoding="utf-8")
    dom = dump_dom(tmp_path, page)
    assert f"<title>kaudit diff: {CONVNET} vs {b}</title>" in dom
    assert len(re.findall(r'<tr class="st-', dom)) == 15
    status = re.search(r'id="kaudit-status"[^>]*', dom).group(0)
    assert 'data-images="2"' in status and 'data-loaded="2"' in status  # both images decoded, non-zero size
    assert "2 of 15 rows shown" in dom  # the script ran
    shot = tmp_path / "shot.png"
    proc = chromium(tmp_path, page.as_uri(), f"--screenshot={shot}")
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    with Image.open(shot) as im:
        px = np.asarray(im.convert("RGB"), np.int16)
    assert px.shape[:2] == (1000, 1400)
    assert px.std() > 20  # not blank
    red = (px[..., 0] > 150) & (px[..., 1] < 80) & (px[..., 2] < 80)
    assert red.sum() > 500  # the FAIL badge and the red tile of conv1


@pytest.mark.browser
@browser
def test_browser_sort_and_filter(tmp_path):
    result = kaudit.diff(BEFORE, AFTER)
    doc = diff_html(result, all_rows=True)
    probe = """<script>
    window.addEventListener('load', function () {
      var th = Array.prototype.filter.call(document.querySelectorAll('#kaudit-table th'),
                                           function (h) { return h.textContent === 'max_abs'; })[0];
      th.click(); th.click();  // descending
      var first = document.querySelector('#kaudit-table tbody tr td').textContent;
      var f = document.querySelector('input.filter');
      f.value = 'bb_bn1 moving'; f.dispatchEvent(new Event('input'));
      var shown = Array.prototype.filter.call(document.querySelectorAll('#kaudit-table tbody tr'),
        function (tr) { return getComputedStyle(tr).display !== 'none'; }).length;
      document.body.setAttribute('data-first', first);
      document.body.setAttribute('data-shown', String(shown));
    });
    </script></body>"""
    page = tmp_path / "probe.html"
    page.write_text(doc.replace("</body>", probe), encoding="utf-8")
    dom = dump_dom(tmp_path, page)
    top = result.table.sort_values("max_abs", ascending=False).iloc[0]["path"]
    assert f'data-first="{top}"' in dom
    assert 'data-shown="2"' in dom  # bb_bn1/moving_mean and bb_bn1/moving_variance


@pytest.mark.browser
@browser
def test_browser_renders_inspect_report(tmp_path):
    page = tmp_path / "inspect.html"
    page.write_text(inspect(CONVNET).render("html"), encoding="utf-8")
    dom = dump_dom(tmp_path, page)
    assert f"<title>kaudit inspect: {CONVNET}</title>" in dom
    assert "15 of 15 rows shown" in dom


@pytest.mark.browser
@browser
def test_browser_drift_chart(tmp_path):
    """The drift chart in Chromium: present above the table, one mark per layer, bars coloured by
    verdict (frozen backbone identical: grey stubs; a changed head layer that passes: blue; one
    that fails: red), taller for larger changes."""
    from kaudit.policy import policy_from_mapping
    from kaudit.report.drift import COLOURS, drift_marks

    pol = policy_from_mapping({"rules": [{"path": "head_dense/**", "atol": 1.0}]})
    result = kaudit.diff(BEFORE, AFTER, policy=pol)
    marks = drift_marks(result)
    probe = """<script>
    window.addEventListener('load', function () {
      var svg = document.querySelector('#kaudit-drift svg.drift');
      var table = document.getElementById('kaudit-table');
      var out = [];
      Array.prototype.forEach.call(svg.querySelectorAll('g.mark'), function (g) {
        var bar = g.querySelector('rect.bar'), box = bar.getBBox();
        out.push([g.getAttribute('data-name'), g.getAttribute('data-verdict'), getComputedStyle(bar).fill,
                  Math.round(box.height * 100) / 100, g.querySelector('title').textContent].join('|'));
      });
      var above = svg.compareDocumentPosition(table) & Node.DOCUMENT_POSITION_FOLLOWING;
      document.body.setAttribute('data-marks', out.join(';;'));
      document.body.setAttribute('data-above', above ? 'yes' : 'no');
      document.body.setAttribute('data-svgw', String(Math.round(svg.getBoundingClientRect().width)));
    });
    </script></body>"""
    page = tmp_path / "drift.html"
    page.write_text(diff_html(result).replace("</body>", probe), encoding="utf-8")
    dom = dump_dom(tmp_path, page)
    import html as _html

    got = [m.split("|") for m in _html.unescape(re.search(r'data-marks="([^"]*)"', dom).group(1)).split(";;")]
    assert 'data-above="yes"' in dom
    assert int(re.search(r'data-svgw="(\d+)"', dom).group(1)) > 300
    assert [g[0] for g in got] == [m.name for m in marks]  # one mark per layer, model order
    assert len(got) == 6 and len({p.rsplit("/", 1)[0] for p in result.table.path}) == 6

    def rgb(hex_colour):
        return "rgb({}, {}, {})".format(*(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)))

    verdicts = {g[0]: g[1] for g in got}
    assert verdicts == {
        "backbone/bb_conv1": "identical",
        "backbone/bb_bn1": "identical",
        "backbone/bb_conv2": "identical",
        "backbone/bb_bn2": "identical",
        "head_dense": "changed",
        "head_out": "fail",
    }
    for name, verdict, fill, _height, title in got:
        assert fill == rgb(COLOURS[verdict]), (name, fill)
        assert name in title
    heights = {g[0]: float(g[3]) for g in got}
    assert heights["head_out"] > heights["head_dense"] > heights["backbone/bb_conv1"] > 0  # identical: a stub
