"""ReaLJam's own web page (realjam 1.0.1, from PyPI) jamming against `comper serve`.

The page is served by Comper (`--frontend`), opened in headless Chromium and played from the
computer keyboard as a player would (its `a s d f g …` keys), so every `/play` request is the one
its `main.js` / `play_from_midi_input.js` build. The page loads Tone.js, WebMidi.js and
@tonejs/midi from CDNs and its instrument samples from GitHub Pages; the test machine reaches
package registries only, so those requests are answered with the same libraries' files from the
npm registry and a short silent WAV for every sample. Nothing else is stubbed.

Environment: COMPER_BIN (default target/release/comper), CHROMIUM (default: `chromium` on PATH).
"""

import importlib.util
import io
import json
import os
import shutil
import socket
import struct
import subprocess
import tarfile
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "target" / "web-vendor"
# The npm packages behind the page's CDN URLs (unpkg/jsdelivr serve these files), pinned.
PACKAGES = {
    "https://unpkg.com/tone": ("tone", "15.5.44", "package/build/Tone.js"),
    "https://cdn.jsdelivr.net/npm/webmidi@latest/dist/iife/webmidi.iife.js": (
        "webmidi",
        "3.3.1",
        "package/dist/iife/webmidi.iife.js",
    ),
    "https://unpkg.com/@tonejs/midi": ("@tonejs/midi", "2.0.28", "package/build/Midi.js"),
}
BPM = 120
# A tune the player types: (key, beats held); the page maps a s d f g h j k to C4 … C5.
TUNE = [("a", 1), ("d", 1), ("g", 1), ("d", 1), ("f", 1), ("h", 1), ("k", 2)] * 3


def npm_file(name: str, version: str, member: str) -> bytes:
    """`member` of the npm package `name@version`, downloaded once into target/web-vendor."""
    tarball = VENDOR / f"{name.replace('/', '_')}-{version}.tgz"
    if not tarball.exists():
        VENDOR.mkdir(parents=True, exist_ok=True)
        short = name.split("/")[-1]
        url = f"https://registry.npmjs.org/{name}/-/{short}-{version}.tgz"
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                tarball.write_bytes(response.read())
        except OSError as error:
            # Without the page's libraries it cannot load; tests/serve.rs still replays the
            # page's /play requests against the server.
            pytest.skip(f"the npm registry is not reachable ({error}); the page cannot load")
    with tarfile.open(tarball) as archive:
        return archive.extractfile(member).read()


def silent_wav(seconds: float = 0.05, rate: int = 22050) -> bytes:
    frames = int(seconds * rate)
    data = b"\x00\x00" * frames
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    return header + fmt + b"data" + struct.pack("<I", len(data)) + data


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def frontend() -> Path:
    spec = importlib.util.find_spec("realjam")
    assert spec and spec.origin, "pip install --no-deps realjam==1.0.1"
    folder = Path(spec.origin).parent / "frontend"
    assert (folder / "index.html").is_file()
    return folder


@pytest.fixture(scope="module")
def server(frontend):
    binary = os.environ.get("COMPER_BIN", str(ROOT / "target" / "release" / "comper"))
    port = free_port()
    log = open(ROOT / "target" / "web-serve.log", "w")
    process = subprocess.Popen(
        [binary, "serve", "--port", str(port), "--frontend", str(frontend)],
        cwd=ROOT,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"{base}/models", timeout=1) as response:
                models = json.load(response)
                break
        except OSError:
            assert process.poll() is None, "comper serve exited"
            time.sleep(0.1)
    else:
        pytest.fail("comper serve did not answer")
    yield base, models
    process.send_signal(2)  # Ctrl-C: a graceful stop
    assert process.wait(timeout=20) == 0
    log.close()


def test_realjam_page_jams_with_comper(server):
    base, models = server
    vendored = {url: npm_file(*package) for url, package in PACKAGES.items()}
    sample = silent_wav()
    plays = []  # (request JSON, status, reply JSON)
    console = []

    def answer(route):
        url = route.request.url
        if url in vendored:
            route.fulfill(body=vendored[url], content_type="text/javascript")
        elif url.endswith((".mp3", ".wav", ".ogg")):
            route.fulfill(body=sample, content_type="audio/wav")
        elif url.startswith(base):
            route.continue_()
        else:  # web fonts: the page renders without them
            route.abort()

    def on_response(response):
        if response.url == f"{base}/play":
            request = json.loads(response.request.post_data)
            plays.append((request, response.status, response.json()))

    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium")
    assert chromium, "install Debian's chromium package"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            args=["--autoplay-policy=no-user-gesture-required", "--no-sandbox"],
        )
        page = browser.new_page()
        page.on("console", lambda m: console.append(m.text))
        page.on("dialog", lambda d: d.dismiss())  # WebMidi has no MIDI devices here
        page.on("response", on_response)
        page.route("**/*", answer)
        page.goto(f"{base}/")

        page.wait_for_selector("#play-btn:not([disabled])", timeout=60_000)
        page.click("#play-btn")
        page.wait_for_selector("#live-session-button:not([disabled])", timeout=30_000)
        assert page.eval_on_selector("#model-select", "s => s.value") == models[0]
        page.fill("#bpm-input", str(BPM))
        page.click("#live-session-button")
        page.focus("body")

        beat = 60.0 / BPM
        for key, beats in TUNE:
            page.keyboard.down(key)
            time.sleep(beats * beat * 0.8)
            page.keyboard.up(key)
            time.sleep(beats * beat * 0.2)
        time.sleep(1.0)
        history = page.evaluate(
            "curSession.chordHistory.map(c => ({symbol: c.symbol, frame: c.scheduleFrame}))"
        )
        notes = page.evaluate("curSession.noteHistory.length")
        page.screenshot(path=str(ROOT / "target" / "web-realjam-page.png"))
        browser.close()

    assert notes == 2 * len(TUNE), console[-20:]
    assert len(plays) >= 20, f"only {len(plays)} /play calls; console: {console[-20:]}"
    assert all(status == 200 for _, status, _ in plays), [p for p in plays if p[1] != 200][:1]
    first = plays[0][0]
    for field in [
        "model",
        "notes",
        "chordTokens",
        "frame",
        "lookahead",
        "commitahead",
        "silenceTill",
        "temperature",
        "introSet",
    ]:
        assert field in first, field
    assert any(reply["introChordTokens"] for _, _, reply in plays), "the intro was sampled"
    planned = [reply for _, _, reply in plays if reply["newChords"]]
    assert planned, "no /play reply carried chords"
    assert all(len(r["newChords"]) == first["lookahead"] for r in planned)
    symbols = [c["symbol"] for c in history if c["symbol"]]
    assert len(symbols) >= 2, f"chords reached the page: {history}"
    print(f"{len(plays)} /play calls, chords heard: {' '.join(symbols)}")
