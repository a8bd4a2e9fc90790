"""The chat page `mmlink serve` answers at `/`, driven in headless Chromium (Debian's `chromium` package, through
playwright): two images uploaded, a question sent, the streamed answer shown — the same text the API gives.
Behind the `browser` marker: `pytest -m browser tests/serve/test_browser.py`. ``MMLINK_BROWSER_MODEL`` picks the
model (default `tiny`); ``MMLINK_BROWSER_SCREENSHOT=PATH`` saves the page (docs/serve_chat.png was taken with
`mini`)."""

import base64
import json
import os
import shutil
from pathlib import Path

import pytest

from mmlink.models import load
from mmlink.serve.app import create_app
from mmlink.serve.engine import Engine

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "images"


def test_chat_page_uploads_images_and_streams_the_answer():
    from test_server import Server

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    name = os.environ.get("MMLINK_BROWSER_MODEL", "tiny")
    model, processor = load(name)
    images = [EXAMPLES / "red_ball_beach.png", EXAMPLES / "red_ball_forest.png"]
    question = "What do the two images have in common?"
    with Server(create_app(Engine(model.eval(), processor), name)) as server, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 900, "height": 640})
        page.goto(f"http://127.0.0.1:{server.port}/")
        page.wait_for_function(f"document.getElementById('model').textContent.includes('{name}')")
        page.set_input_files("#files", [str(p) for p in images])
        page.wait_for_function("document.querySelectorAll('#thumbs img').length === 2")
        page.fill("#text", question)
        page.click("#send")
        page.wait_for_selector(".msg.assistant[data-done='1']", timeout=120_000)
        shown = page.inner_text(".msg.assistant span")
        assert page.locator(".msg.user img").count() == 2 and page.inner_text(".msg.user span") == question
        if os.environ.get("MMLINK_BROWSER_SCREENSHOT"):
            page.screenshot(path=os.environ["MMLINK_BROWSER_SCREENSHOT"], full_page=True)
        browser.close()
        status, body = server.post(json.dumps({"model": name, "messages": [{"role": "user", "content": [
            *({"type": "image_url", "image_url": {"url": _data_url(p)}} for p in images),
            {"type": "text", "text": question}]}]}))
    assert status == 200 and shown.strip() == body["choices"][0]["message"]["content"]


def _data_url(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
