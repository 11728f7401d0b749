"""`specinv report`: a self-contained listening page (parsed here; rendered by chromium when installed)."""
import base64
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import soundfile as sf

from clihelp import run
from companionhelp import GUITAR, SPEECH, json_lines, no_temporaries, write_clip
from specinv_cli.cli import main

METHODS = ("fgla", "pghi", "dm")


def _cli(*args):
    try:
        main([str(a) for a in args])
    except SystemExit as e:
        assert not e.code, f"specinv {' '.join(map(str, args))} exited {e.code}"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, corpus):
    """RUN_DIR/{reference,target,fgla,pghi,dm}/ for two short clips."""
    d = tmp_path_factory.mktemp("run")
    (d / "reference").mkdir()
    write_clip(d / "reference" / "speech.wav", SPEECH)
    write_clip(d / "reference" / "guitar.wav", GUITAR)
    _cli("stft", d / "reference", "-O", d / "target", "-q")
    for m in METHODS:
        _cli("invert", d / "target", "-m", m, "-n", "10", "-O", d / m, "-q")
    return d


class Page(HTMLParser):
    """Collects audio sources, images, table rows and every attribute value."""

    def __init__(self):
        super().__init__()
        self.audio, self.images, self.attrs, self.rows, self.headers = [], [], [], {}, {}
        self._table = None
        self._row = None
        self._cell = None
        self._head = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.attrs += [v for _, v in attrs if v]
        if tag == "audio":
            self.audio.append(a)
        elif tag == "img":
            self.images.append(a)
        elif tag == "table":
            self._table = a.get("id")
            self.rows[self._table], self.headers[self._table] = [], []
        elif tag == "tr":
            self._row, self._head = [], False
        elif tag in ("td", "th"):
            self._cell = ""
            self._head = self._head or tag == "th"

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell.strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._row and self._table:
                if self._head:
                    self.headers[self._table] = self._row
                else:
                    self.rows[self._table].append(self._row)
            self._row = None


def parse(path) -> Page:
    p = Page()
    p.feed(Path(path).read_text(encoding="utf-8"))
    return p


def test_page_is_self_contained_and_complete(run_dir, tmp_path, capsys):
    out = tmp_path / "report.html"
    code, stdout, err = run(capsys, "report", run_dir, "-o", out, "-m", ",".join(METHODS), "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    text = out.read_text(encoding="utf-8")
    assert not re.search(r"https?:|//cdn|<link\b|@import|url\(", text, flags=re.I)   # no network resource
    page = parse(out)
    # per item: the reference and each method's output, each a playable embedded WAV
    assert len(page.audio) == 2 * (1 + len(METHODS))
    for a in page.audio:
        assert a["src"].startswith("data:audio/wav;base64,")
        data, sr = sf.read(io.BytesIO(base64.b64decode(a["src"].split(",", 1)[1])))
        assert sr == 22050 and len(data) > 0.9 * sr
    # spectrogram images: the target and each output, per item
    assert len(page.images) == 2 * (1 + len(METHODS))
    assert all(i["src"].startswith("data:image/png;base64,iVBOR") for i in page.images)
    assert not any(a.startswith(("http", "//")) for a in page.attrs)
    # the sortable table: one row per item x method, with the numbers `specinv eval` gives
    rows = page.rows["metrics"]
    assert len(rows) == 2 * len(METHODS)
    head = page.headers["metrics"]
    assert [h.split(" ")[0] for h in head[:5]] == ["item", "method", "SC", "SNR", "SER"]
    row = next(r for r in rows if r[0] == "speech" and r[1] == "dm")
    code, stdout, err = run(capsys, "eval", run_dir / "dm" / "speech.wav", "-t", run_dir / "target" / "speech.npy",
                            "-r", run_dir / "reference" / "speech.wav", "--json")
    ev = json_lines(stdout)[0]
    assert float(row[2]) == pytest.approx(ev["sc"], abs=0.006)
    lsd_col = next(i for i, h in enumerate(head) if h.startswith("LSD"))
    assert float(row[lsd_col]) == pytest.approx(ev["lsd"], abs=0.006)
    assert summary["summary"]["dm"]["median"]["sc"] < summary["summary"]["pghi"]["median"]["sc"]
    assert [r[0] for r in page.rows["summary"]] == list(METHODS)
    assert no_temporaries(tmp_path)


def test_link_mode_and_reference_only_targets(run_dir, tmp_path, capsys):
    d = tmp_path / "run"
    shutil.copytree(run_dir, d, ignore=shutil.ignore_patterns("target"))
    out = tmp_path / "pages" / "r.html"
    out.parent.mkdir()
    code, _, err = run(capsys, "report", d, "-o", out, "--link", "--no-images", "--no-perceptual")
    assert code == 0, err
    page = parse(out)
    assert len(page.audio) == 8 and not page.images
    for a in page.audio:
        assert not a["src"].startswith("data:")
        assert (out.parent / a["src"]).resolve().is_file()
    # no target folder: SC against the reference's own spectrogram, said on the page
    assert "target: the reference&#x27;s spectrogram" in out.read_text() or "target: the reference's spectrogram" in out.read_text()
    assert {r[1] for r in page.rows["metrics"]} == {"dm", "fgla", "pghi"}   # folders found, sorted


def test_errors(tmp_path, capsys, run_dir):
    code, out, err = run(capsys, "report", tmp_path / "nope", "-o", tmp_path / "r.html")
    assert code == 2 and "nope: no such folder" in err
    (tmp_path / "empty").mkdir()
    code, out, err = run(capsys, "report", tmp_path / "empty", "-o", tmp_path / "r.html")
    assert code == 2 and "holds no method folder with audio files" in err
    code, out, err = run(capsys, "report", run_dir, "-o", tmp_path / "r.html", "-m", "fgla,xyz")
    assert code == 2 and "no method folder 'xyz'" in err
    code, out, err = run(capsys, "report", run_dir, "-o", tmp_path / "missing" / "r.html", "--no-images")
    assert code == 2 and "output folder" in err and "does not exist" in err
    assert not (tmp_path / "r.html").exists() and err.count("error:") == 1


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
def test_chromium_renders_page_and_loads_audio(run_dir, tmp_path, capsys):
    out = tmp_path / "report.html"
    code, _, err = run(capsys, "report", run_dir, "-o", out, "--no-perceptual")
    assert code == 0, err
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
             f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "shot.png"
    r = subprocess.run(flags + ["--window-size=1280,900", f"--screenshot={shot}", out.as_uri()],
                       capture_output=True, timeout=120)
    assert r.returncode == 0 and shot.is_file(), r.stderr.decode()[-500:]
    head = shot.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")) == (1280, 900)
    # the page's script records each player's duration on loadedmetadata; dump the DOM after it ran
    r = subprocess.run(flags + ["--virtual-time-budget=10000", "--dump-dom", out.as_uri()],
                       capture_output=True, timeout=120)
    dom = r.stdout.decode()
    durations = [float(v) for v in re.findall(r'data-duration="([^"]+)"', dom)]
    assert 'data-error="1"' not in dom
    assert len(durations) == 8
    expected = sorted(sf.info(str(p)).duration for m in ("reference", *METHODS) for p in (run_dir / m).glob("*.wav"))
    assert sorted(durations) == pytest.approx(expected, abs=1e-3)


def test_a_bad_target_costs_its_metrics_not_the_page(run_dir, tmp_path, capsys):
    d = tmp_path / "run"
    shutil.copytree(run_dir, d)
    (d / "target" / "speech.npy").write_bytes(b"\x93NUMPY garbage")
    out = tmp_path / "r.html"
    code, _, err = run(capsys, "report", d, "-o", out, "--no-images", "--no-perceptual")
    assert code == 0, err
    text = out.read_text()
    assert "target left out:" in text and "speech.npy" in text
    page = parse(out)
    # speech falls back to its reference's spectrogram; guitar keeps its target
    assert sorted({r[0] for r in page.rows["metrics"]}) == ["guitar", "speech"]
    assert len(page.rows["metrics"]) == 6


@pytest.fixture(scope="module")
def level_run(tmp_path_factory, corpus):
    """RUN_DIR/{reference,target,same,half}/: the references themselves and at half level (no
    inversion: the numbers are known)."""
    import numpy as np

    d = tmp_path_factory.mktemp("levels")
    for sub in ("reference", "same", "half"):
        (d / sub).mkdir()
    for stem, clip in (("speech", SPEECH), ("guitar", GUITAR)):
        x = write_clip(d / "reference" / f"{stem}.wav", clip, subtype="FLOAT")
        sf.write(d / "same" / f"{stem}.wav", x, 22050, subtype="FLOAT")
        sf.write(d / "half" / f"{stem}.wav", np.float32(0.5) * x, 22050, subtype="FLOAT")
    _cli("stft", d / "reference", "-O", d / "target", "-q")
    return d


def _sc_mode(path):
    m = re.search(r'<p id="sc-mode" data-scale-invariant="(true|false)"><b>([^<]*)</b>', Path(path).read_text())
    assert m, "the page does not say which SC it shows"
    return m[1] == "true", m[2]


def test_scale_invariant_is_threaded_through_and_stated_on_top(level_run, tmp_path, capsys):
    import math

    out = tmp_path / "r.html"
    code, stdout, err = run(capsys, "report", level_run, "-o", out, "-m", "same,half", "--no-perceptual", "--json")
    assert code == 0, err
    si, text = _sc_mode(out)
    assert not si and text.startswith("SC shown: of each file as written")
    assert json.loads(stdout)["scale_invariant"] is False
    rows = {(r[0], r[1]): r for r in parse(out).rows["metrics"]}
    assert float(rows["speech", "half"][2]) == pytest.approx(20 * math.log10(0.5), abs=0.006)
    # --scale-invariant: the least-squares gain removes the level error, as eval --scale-invariant does
    code, stdout, err = run(capsys, "report", level_run, "-o", out, "-m", "same,half", "--no-perceptual", "--json",
                            "--scale-invariant")
    assert code == 0, err
    si, text = _sc_mode(out)
    assert si and text.startswith("SC shown: scale-invariant, after the least-squares gain")
    assert json.loads(stdout)["scale_invariant"] is True
    rows = {(r[0], r[1]): r for r in parse(out).rows["metrics"]}
    code, so, err = run(capsys, "eval", level_run / "half" / "speech.wav", "-t", level_run / "target" / "speech.npy",
                        "--scale-invariant", "--json")
    ev = json_lines(so)[0]
    assert ev["sc"] < -60 and float(rows["speech", "half"][2]) == pytest.approx(ev["sc"], abs=0.006)
    assert len(parse(out).images) == 2 * 3       # images drawn from the compared audio


def test_refused_comparisons_are_errors_and_page_notes(level_run, tmp_path, capsys):
    import numpy as np

    from companionhelp import write_stereo

    d = tmp_path / "run"
    shutil.copytree(level_run, d)
    (d / "bad").mkdir()
    write_stereo(d / "bad" / "speech.wav", SPEECH)
    g = sf.read(d / "reference" / "guitar.wav", dtype="float32")[0]
    sf.write(d / "bad" / "guitar.wav", np.concatenate([g, g]), 22050, subtype="FLOAT")
    out = tmp_path / "r.html"
    code, stdout, err = run(capsys, "report", d, "-o", out, "--no-images", "--no-perceptual")
    assert code == 1 and err.count("error:") == 2 and "Traceback" not in err
    assert f"error: {d / 'bad' / 'speech.wav'}: has 2 channels" in err and "--mixdown" in err
    n = 2 * len(g)
    assert f"error: {d / 'bad' / 'guitar.wav'}: {n} samples ({n / 22050:.2f} s), but the target" in err
    text = out.read_text()
    assert "refused:" in text and "has 2 channels" in text
    rows = parse(out).rows["metrics"]
    assert {r[1] for r in rows} == {"half", "same"} and len(rows) == 4      # the others still scored
    code, stdout, err = run(capsys, "report", d, "-o", out, "--no-images", "--no-perceptual", "--mixdown", "--truncate")
    assert code == 0, err
    rows = parse(out).rows["metrics"]
    assert len(rows) == 6 and "mixed down from 2 channels (--mixdown)" in out.read_text()


def test_nothing_scored_is_exit_2_and_no_page(tmp_path, capsys, corpus):
    """A reference at another rate, no target: the reference's spectrogram cannot be the target."""
    from companionhelp import write_resampled

    d = tmp_path / "run"
    (d / "reference").mkdir(parents=True)
    (d / "m").mkdir()
    x = write_clip(d / "m" / "speech.wav", SPEECH, subtype="FLOAT")
    write_resampled(d / "reference" / "speech.wav", x, 16000)
    out = tmp_path / "r.html"
    code, stdout, err = run(capsys, "report", d, "-o", out, "--no-images", "--no-perceptual")
    assert code == 2 and err.count("error:") == 1 and not out.exists() and no_temporaries(tmp_path)
    assert f"{d / 'reference' / 'speech.wav'}: sample rate 16000 Hz" in err and "22050 Hz" in err
    code, stdout, err = run(capsys, "report", d, "-o", out, "--no-images", "--no-perceptual", "--resample")
    assert code == 0, err
    assert len(parse(out).rows["metrics"]) == 1 and "resampled from 16000 Hz" in out.read_text()


def test_a_run_without_target_or_reference_gets_each_outputs_own_spectrogram(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    import numpy as np

    (tmp_path / "run" / "fgla").mkdir(parents=True)
    rng = np.random.default_rng(0)
    sf.write(str(tmp_path / "run" / "fgla" / "a.wav"), (0.1 * rng.standard_normal(22050)).astype("float32"), 22050)
    code, _, err = run(capsys, "report", tmp_path / "run", "-o", tmp_path / "r.html", "-q")
    assert code == 0, err
    page = (tmp_path / "r.html").read_text()
    assert page.count("data:image/png;base64,") >= 1  # the output's own spectrogram is drawn
