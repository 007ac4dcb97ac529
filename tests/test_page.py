"""The page of ``asr serve`` in a real headless Chromium (Debian's chromium + chromium-driver, selenium).

A fake microphone plays an AN4 utterance (``--use-file-for-fake-audio-capture``); the page must show
the final text that ``asr stream`` gives on the audio the server received, and that audio must be
the file's. A file chosen through the page must show what ``asr transcribe`` gives. Screenshots at
desktop and phone widths go to the test's tmp folder. Without a browser these tests skip, except
under CI=true, where that is a failure.
"""

from __future__ import annotations

import io
import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from asr.config import EncoderConfig, ModelConfig
from asr.inference.recognizer import Recognizer
from asr.inference.server import Session
from asr.inference.stream import stream_audio
from asr.model.checkpoint import model_package, save_atomic
from asr.model.ctc import CTCModel
from test_server import STREAM_CFG, TIMEOUT, TOKENIZER, _server, prototype  # noqa: F401
from test_web import _expected_json, lc_file, wav  # noqa: F401

try:
    from selenium import webdriver
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # reported by _browser: a skip, or a failure under CI=true
    webdriver = None

DESKTOP, PHONE = (1280, 900), (390, 844)  # CSS pixels; the phone is an iPhone 12-sized screen


def _browser(*args: str, prefs: dict | None = None):
    """Headless Chromium through chromedriver; skipped without them (a failure under CI=true)."""
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver or webdriver is None:
        message = "chromium, chromedriver or selenium not found (apt-get install chromium chromium-driver; " \
                  "pip install -e .[test])"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--mute-audio",
                f"--window-size={DESKTOP[0]},{DESKTOP[1]}", *args):
        options.add_argument(arg)
    if prefs:
        options.add_experimental_option("prefs", prefs)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))


def _http_page(uri: str) -> str:
    return uri.replace("ws://", "http://") + "/"


def _wait(browser, condition, what: str):
    try:
        return WebDriverWait(browser, TIMEOUT, poll_frequency=0.1).until(lambda b: condition(b))
    except Exception:
        status = browser.find_element(By.ID, "status").text
        log = [entry["message"] for entry in browser.get_log("browser")][-5:]
        raise AssertionError(f"the page never {what}; status: {status!r}; console: {log}") from None


def _final_texts(browser, list_id: str) -> list[str]:
    """The words of each final segment shown (without their times)."""
    return browser.execute_script(
        "return [...document.querySelectorAll(arguments[0] + ' li')].map(li => "
        "[...li.querySelectorAll('.word')].map(w => w.firstChild.textContent).join(' '))", f"#{list_id}")


def _tab_to(browser, element_id: str) -> None:
    """Move the keyboard focus with Tab until ``element_id`` has it."""
    for _ in range(20):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        if browser.switch_to.active_element.get_attribute("id") == element_id:
            return
    raise AssertionError(f"Tab never reached #{element_id}")


@pytest.fixture(scope="module")
def fake_microphone(wav, tmp_path_factory):
    """The AN4 utterance with 0.5 s of silence before and 1.5 s after (the browser loops it)."""
    samples, rate = sf.read(wav, dtype="int16")
    padded = np.concatenate([np.zeros(rate // 2, np.int16), samples, np.zeros(rate * 3 // 2, np.int16)])
    path = tmp_path_factory.mktemp("page") / "microphone.wav"
    sf.write(path, padded, rate, subtype="PCM_16")
    return path, padded


def test_microphone_shows_what_asr_stream_gives_and_a_lost_server_is_reported(prototype, lc_file,  # noqa: F811
                                                                             fake_microphone, monkeypatch, tmp_path):
    path, played = fake_microphone
    received: list[bytes] = []
    rates: list[int] = []
    receive = Session.receive

    def recording(self, message):
        if isinstance(message, bytes):
            received.append(message)
        elif "config" in message:
            rates.append(json.loads(message)["config"]["sample_rate"])
        return receive(self, message)

    monkeypatch.setattr(Session, "receive", recording)
    browser = _browser("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                       f"--use-file-for-fake-audio-capture={path}")
    try:
        with _server(prototype) as uri:
            browser.get(_http_page(uri))
            _tab_to(browser, "mic")  # the keyboard alone
            browser.switch_to.active_element.send_keys(Keys.ENTER)
            _wait(browser, lambda b: sum(map(len, received)) >= 2 * len(played) * 1.2, "sent the audio")
            assert browser.find_element(By.ID, "mic").get_attribute("aria-label") == "Stop microphone"
            browser.switch_to.active_element.send_keys(Keys.ENTER)
            _wait(browser, lambda b: b.find_element(By.ID, "status").text == "Stopped.", "stopped")
            shown, first_run = _final_texts(browser, "finals"), len(received)
            browser.save_screenshot(str(tmp_path / "live-desktop.png"))
            browser.find_element(By.ID, "mic").click()  # again, then the server goes away
            _wait(browser, lambda b: "Listening" in b.find_element(By.ID, "status").text, "listened again")
        _wait(browser, lambda b: "connection to the server was lost" in b.find_element(By.ID, "status").text,
              "reported the lost server")
    finally:
        browser.quit()
    audio = np.frombuffer(b"".join(received[:first_run]), dtype="<i2")
    assert rates[0] == 16000
    sf.write(tmp_path / "received.wav", audio, 16000, subtype="PCM_16")
    out = io.StringIO()
    stream_audio(lc_file, tmp_path / "received.wav", STREAM_CFG, fmt="json", out=out)
    expected = [json.loads(line)["text"] for line in out.getvalue().splitlines() if "result" in line]
    assert len(expected) >= 2 and " ".join(shown) == " ".join(expected)
    _assert_same_audio(audio, played)


def _assert_same_audio(received: np.ndarray, played: np.ndarray) -> None:
    """``received`` holds a stretch of ``played`` (looped): correlation at the best lag near 1."""
    looped = np.tile(played, 3).astype(np.float64)
    part = received[: len(played)].astype(np.float64)
    size = 1 << int(np.ceil(np.log2(len(looped) + len(part))))
    corr = np.fft.irfft(np.fft.rfft(looped, size) * np.conj(np.fft.rfft(part, size)), size)[: len(looped) - len(part)]
    lag = int(np.argmax(corr))
    segment = looped[lag : lag + len(part)]
    similarity = corr[lag] / (np.linalg.norm(segment) * np.linalg.norm(part))
    assert similarity > 0.95, similarity  # 0.99 measured: not bit-exact, the fake device resamples inside


def test_file_upload_shows_asr_transcribe_text_downloads_and_fits_a_phone_with_a_token(wav, tmp_path,  # noqa: F811
                                                                                      prototype):
    model = CTCModel(ModelConfig(encoder=EncoderConfig(num_layers=1, hidden_size=16)), len(TOKENIZER.units))
    save_atomic(model_package(model, TOKENIZER), tmp_path / "offline.pt")
    expected = _expected_json(tmp_path / "offline.pt", wav, tmp_path)
    browser = _browser("--use-fake-device-for-media-stream",
                       prefs={"profile.default_content_setting_values.media_stream_mic": 2})  # microphone refused
    try:
        with _server(prototype) as uri:
            browser.get(_http_page(uri))
            browser.find_element(By.ID, "mic").click()
            _wait(browser, lambda b: "microphone was refused" in b.find_element(By.ID, "status").text,
                  "said the microphone was refused")
        with _server(None, Recognizer.from_pretrained(tmp_path / "offline.pt", device="cpu"), token="t0k") as uri:
            browser.get(_http_page(uri) + "?token=t0k")  # the page's later requests carry its cookie
            _wait(browser, lambda b: "streaming model" in b.find_element(By.ID, "mic-note").text,
                  "explained that live recognition needs a streaming model")
            browser.find_element(By.ID, "file").send_keys(str(wav.resolve()))  # chromedriver takes canonical paths only
            _wait(browser, lambda b: "s of audio" in b.find_element(By.ID, "file-status").text, "transcribed")
            text = browser.find_element(By.ID, "file-text").text
            words = _final_texts(browser, "file-segments")
            srt = browser.execute_async_script(
                "const done = arguments[0]; fetch(document.getElementById('download-srt').href).then(r => r.text())"
                ".then(done, (err) => done(String(err)))")
            names = [browser.find_element(By.ID, f"download-{f}").get_attribute("download") for f in ("srt", "vtt",
                                                                                                     "json")]
            browser.save_screenshot(str(tmp_path / "page-desktop.png"))
            browser.set_window_size(*PHONE)
            width = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
            browser.save_screenshot(str(tmp_path / "page-phone.png"))
    finally:
        browser.quit()
    assert text == expected["text"] and words == [" ".join(w["word"] for w in s["words"]) for s in expected["segments"]]
    assert expected["text"] in srt and "-->" in srt
    assert names == [f"{wav.stem}.srt", f"{wav.stem}.vtt", f"{wav.stem}.json"]
    assert width[0] <= width[1], f"the page scrolls sideways at phone width: {width}"
    assert all((tmp_path / f"page-{size}.png").stat().st_size > 10_000 for size in ("desktop", "phone"))
