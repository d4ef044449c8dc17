"""The demo app (``v2a demo``): its generation function, and the real page in headless Chromium.

The browser test needs Gradio and Selenium (``pip install -e '.[dev,demo]'``) and Debian's ``chromium`` and
``chromium-driver`` (``make system-deps``); it skips, saying which is missing, without them. It starts
``v2a demo`` as a child process, uploads a video, generates, plays the result and keeps a screenshot
(``demo_app.png`` in the test's tmp folder, and in ``$V2A_TEST_ARTIFACTS`` when that is set).
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.data.videos import make_video

CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--autoplay-policy=no-user-gesture-required", "--window-size=1400,1100"]


def export_of(checkpoint: str) -> Path:
    return Path(checkpoint).parent.parent / "export"


def test_the_demo_runner_writes_the_result_spectrogram_and_check(one_step_checkpoint, tmp_path):
    pytest.importorskip("gradio", reason="the demo needs Gradio: pip install -e '.[demo]'")
    from v2a import V2APipeline
    from v2a.generation.demo import DemoRunner, build_demo
    from v2a.media import probe
    from v2a.watermark import Watermarker

    pipe = V2APipeline.from_pretrained(export_of(one_step_checkpoint))
    video = make_video(tmp_path / "clip.mp4", size=(64, 48), fps=25, seconds=2.4)
    run = DemoRunner(pipe, work=tmp_path, watermarker=Watermarker(key="demo-test"))
    muxed, png, check = run(str(video), "ignored by a video-only model", "", "", steps=1, cfg_scale=2.0, seed=3)
    assert abs(probe(muxed, max_resolution=8192, max_duration_s=60).duration - 2.4) < 0.05
    # the check's verdict depends on the (barely trained) model's audio surviving AAC; that it is shown is the test
    assert Path(png).stat().st_size > 1000 and "Watermark" in check and "p = " in check and "seed 3" in check
    with pytest.raises(ValueError, match="upload a video"):
        run(None)
    build_demo(pipe, work=tmp_path)  # the page builds (its text boxes hidden for a video-only model)


def _missing_for_browser() -> str | None:
    for module, hint in (("gradio", "pip install -e '.[demo]'"), ("selenium", "pip install selenium")):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed ({hint})"
    for binary in ("chromium", "chromedriver"):
        if shutil.which(binary) is None:
            return f"{binary} is not installed (apt-get install chromium chromium-driver, or make system-deps)"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"v2a demo exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"v2a demo did not listen on {port} in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
def test_the_demo_page_in_a_headless_browser(one_step_checkpoint, tmp_path):
    missing = _missing_for_browser()
    if missing:
        pytest.skip(f"browser test: {missing}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    seconds = 3.2
    video = make_video(tmp_path / "upload.mp4", size=(96, 64), fps=25, seconds=seconds)
    port, log = _free_port(), tmp_path / "demo.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "V2A_WATERMARK_KEY": "browser-test", "GRADIO_ANALYTICS_ENABLED": "False"}
    command = [sys.executable, "-m", "v2a.cli", "demo", "--ckpt", str(export_of(one_step_checkpoint)), "--port",
               str(port), "--threads", "1", "--work", str(tmp_path / "work")]
    with open(log, "w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    driver = None
    try:
        _wait_for_port(port, server, log)
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium")
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        wait = WebDriverWait(driver, 120)
        driver.get(f"http://127.0.0.1:{port}")
        upload = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#input-video input[type=file]"))[0]
        upload.send_keys(str(video))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#input-video video"))  # the upload is shown
        steps = driver.find_element(By.CSS_SELECTOR, "#steps input[type=number]")
        steps.clear()
        steps.send_keys("2")
        driver.find_element(By.CSS_SELECTOR, "#generate").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#result-video video"))
        wait.until(lambda d: "Watermark" in d.find_element(By.CSS_SELECTOR, "#watermark-check").text)
        # the result's own audio track, decoded by the browser: the generated soundtrack, as long as the video
        decoded = driver.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const video = document.querySelector('#result-video video');
            fetch(video.currentSrc).then(r => r.arrayBuffer())
              .then(b => new OfflineAudioContext(1, 1, 16000).decodeAudioData(b))
              .then(a => done({seconds: a.duration, peak: Math.max(...a.getChannelData(0).map(Math.abs))}),
                    e => done({error: String(e)}));""")
        assert "error" not in decoded, decoded
        assert abs(decoded["seconds"] - seconds) < 0.05 and decoded["peak"] > 1e-3
        played = driver.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const video = document.querySelector('#result-video video');
            video.muted = false;
            video.play().then(() => setTimeout(() => done({time: video.currentTime, duration: video.duration,
                audio_bytes: video.webkitAudioDecodedByteCount}), 1000), e => done({error: String(e)}));""")
        assert "error" not in played, played
        assert played["time"] > 0.2 and played["audio_bytes"] > 0 and abs(played["duration"] - seconds) < 0.05
        check = driver.find_element(By.CSS_SELECTOR, "#watermark-check").text
        assert "Watermark" in check and "p = " in check, check
        assert driver.find_element(By.CSS_SELECTOR, "#spectrogram img").get_attribute("src")
        shot = tmp_path / "demo_app.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        if os.environ.get("V2A_TEST_ARTIFACTS"):
            Path(os.environ["V2A_TEST_ARTIFACTS"]).mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, Path(os.environ["V2A_TEST_ARTIFACTS"]) / shot.name)
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def test_v2a_demo_refuses_a_missing_checkpoint(tmp_path, capsys):
    from v2a.cli import main

    assert main(["demo", "--ckpt", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
