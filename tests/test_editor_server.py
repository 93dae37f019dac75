"""The editor's server: its JSON API over a tiny generator, bad uploads, concurrent requests, `ganslim edit`."""

from __future__ import annotations

import io
import json
import socket
import threading
import urllib.request

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from ganslim.apps.generate import seed_w_plus
from ganslim.cli import main
from ganslim.editing.directions import edited_layers, save_directions, sefa_directions
from ganslim.editing.encoder import encoder_for, save_encoder
from ganslim.editing.web import RenderConfig, create_app, serving_in_thread
from ganslim.editing.web.editor import INTERACTIVE_MS, choose_preview, default_target_ms
from ganslim.editing.web.uploads import MAX_UPLOAD_BYTES
from editor_helpers import edited, mean_inversion, png_bytes, png_pixels, tiny_editor, unit_pixels
from helpers import TINY_ENCODER, save_tiny_stylegan2, save_tiny_student, tiny_stylegan2

pytestmark = pytest.mark.usefixtures("one_torch_thread")
PIXEL = 1 / 255 + 1e-9


@pytest.fixture(scope="module")
def editor():
    return tiny_editor()


@pytest.fixture
def client(editor):
    return TestClient(create_app(editor))


def test_config_offers_four_resolutions_by_four_widths_and_a_default_within_the_target(client, editor):
    config = client.get("/api/config").json()
    assert [d["name"] for d in config["directions"]] == ["sefa_0", "sefa_1", "sefa_2"]
    assert all(d["spread"] > 0 for d in config["directions"])
    assert {(c["resolution"], c["ratio"]) for c in config["configs"]} == {
        (side, ratio) for side in (4, 8, 16) for ratio in (0.25, 0.5, 0.75, 1.0)}
    assert config["full"] == {"resolution": 16, "ratio": 1.0} and config["upload"] is False
    full_ms = next(c["ms"] for c in config["configs"] if c["resolution"] == 16 and c["ratio"] == 1.0)
    assert config["target_ms"] == pytest.approx(max(full_ms / 5, INTERACTIVE_MS), abs=0.02)
    assert config["default_preview"] == {"resolution": editor.default_preview.resolution,
                                         "ratio": editor.default_preview.ratio}
    assert editor.default_preview != editor.full
    assert edited_layers(editor.generator.num_ws) == 4


def test_the_default_preview_is_the_richest_within_the_target_else_the_fastest():
    full = RenderConfig(64, 1.0)
    times = {RenderConfig(16, 0.25): 1.0, RenderConfig(16, 1.0): 3.0, RenderConfig(32, 0.5): 4.0,
             RenderConfig(32, 1.0): 9.0, full: 20.0}
    assert choose_preview(times, full, 4.0) == RenderConfig(32, 0.5)
    assert choose_preview(times, full, 0.5) == RenderConfig(16, 0.25)
    assert choose_preview(times, full, 100.0) == RenderConfig(32, 1.0)


def test_the_default_target_is_a_fifth_of_the_full_time_but_at_least_interactive():
    assert default_target_ms(10_000.0) == 2_000.0  # a 1024 px generator: its preview must be 5x faster
    assert default_target_ms(6.0) == INTERACTIVE_MS  # a 32 px one: every preview is fast enough, none is 4 px


def test_sample_preview_and_finalize_render_the_edited_w_plus(client, editor):
    generator = editor.generator
    w_seed = seed_w_plus(generator, [5]).detach()
    sample = client.post("/api/sample", json={"seed": 5}).json()
    assert sample["kind"] == "reconstruction" and sample["resolution"] == 16 and sample["ms"] > 0
    assert (png_pixels(sample["image"]) - unit_pixels(editor.synthesize(w_seed, editor.full))).abs().max() <= PIXEL
    strengths = {"sefa_0": 2.0, "sefa_2": -1.5}
    want = edited(editor, w_seed, strengths)
    preview = client.post("/api/render", json={"strengths": strengths, "resolution": 8, "ratio": 0.5}).json()
    assert (preview["kind"], preview["resolution"], preview["ratio"]) == ("preview", 8, 0.5)
    assert preview["channels"] == [8, 8, 4, 4] and preview["number"] == sample["number"] + 1
    sub = unit_pixels(editor.synthesize(want, RenderConfig(8, 0.5)))
    assert sub.shape == (3, 8, 8) and (png_pixels(preview["image"]) - sub).abs().max() <= PIXEL
    final = client.post("/api/render", json={"strengths": strengths, "final": True}).json()
    assert (final["kind"], final["resolution"]) == ("final", 16)
    full = unit_pixels(editor.synthesize(want, editor.full))
    assert (png_pixels(final["image"]) - full).abs().max() <= PIXEL
    assert not torch.allclose(full, unit_pixels(editor.synthesize(w_seed, editor.full)), atol=0.05)  # it did edit
    download = client.get("/api/result.png")
    assert download.headers["content-disposition"] == 'attachment; filename="edit.png"'
    assert (png_pixels(download.content) - full).abs().max() <= PIXEL
    w_plus = np.load(io.BytesIO(client.get("/api/result.npy").content))
    torch.testing.assert_close(torch.from_numpy(w_plus), want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("body, words", [
    ({"strengths": {"smile": 1}, "final": True}, "unknown direction(s) smile: this editor has sefa_0, sefa_1, sefa_2"),
    ({"strengths": {"sefa_0": 3.5}, "final": True}, "strength 3.5 of 'sefa_0' is outside -3 .. 3"),
    ({"strengths": {}, "resolution": 2, "ratio": 0.5}, "2 px at width 0.5 is not offered: pick one of 4 px x 0.25"),
    ({"strengths": {}, "resolution": 8}, "a preview needs a resolution and a width ratio"),
    ({"strengths": {"sefa_0": "big"}}, "malformed request: strengths.sefa_0: Input should be a valid number"),
])
def test_bad_render_requests_answer_one_line(client, body, words):
    client.post("/api/sample", json={"seed": 1})
    response = client.post("/api/render", json=body)
    assert response.status_code == 400 and words in response.json()["error"]


def test_requests_before_a_sample_or_finalize_say_what_to_do_first():
    client = TestClient(create_app(tiny_editor()))
    render = client.post("/api/render", json={"final": True})
    assert render.status_code == 400 and render.json()["error"] == "pick a sample (seed) or upload an image first"
    assert client.get("/api/result.png").json()["error"] == "nothing finalized yet: press Finalize first"
    assert "seed: Input should be greater than or equal to 0" in client.post("/api/sample", json={"seed": -1}).text
    assert client.post("/api/sample", content=b"{not json", headers={"content-type": "application/json"}
                       ).status_code == 400


def test_the_page_and_its_script_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="finalize"' in page.text and "/static/editor.js" in page.text
    assert "/api/render" in client.get("/static/editor.js").text


def test_without_an_inversion_an_upload_says_to_pass_one(client):
    response = client.post("/api/upload", content=png_bytes(Image.new("RGB", (20, 20))))
    assert response.status_code == 400
    assert response.json()["error"].startswith("uploading needs an inversion: restart ganslim edit with --encoder CKPT and/or "
                                               "--project-steps N")


def test_an_upload_is_cropped_resized_and_inverted():
    editor = tiny_editor(mean_inversion)
    client = TestClient(create_app(editor))
    assert client.get("/api/config").json()["upload"] is True
    photo = Image.new("RGB", (60, 40), (255, 255, 255))
    photo.paste((0, 0, 0), (0, 0, 30, 40))  # the left half black: so is the left half of the centred square
    answer = client.post("/api/upload", content=png_bytes(photo, "JPEG"), headers={"content-type": "image/jpeg"})
    assert answer.status_code == 200, answer.text
    shown = png_pixels(answer.json()["input"])
    assert shown.shape == (3, 16, 16) and shown[:, :, :6].max() < 0.1 and shown[:, :, 10:].min() > 0.9
    image = torch.from_numpy(shown.numpy() * 2 - 1).float()[None]
    expected = editor.synthesize(mean_inversion(image), editor.full)
    assert (png_pixels(answer.json()["image"]) - unit_pixels(expected)).abs().max() <= 2 * PIXEL


@pytest.mark.parametrize("make, status, words", [
    (lambda: b"", 400, "the upload is empty"),
    (lambda: b"%PDF-1.4 not an image", 400, "the upload is not an image this editor reads (PNG, JPEG, WEBP, BMP)"),
    (lambda: png_bytes(Image.new("RGB", (64, 64), (9, 99, 199)))[:-40], 400, "could not be decoded (truncated"),
    (lambda: png_bytes(Image.new("1", (9000, 4))), 400, "the upload is 9000x4 pixels, more than 8192 on a side"),
    (lambda: png_bytes(Image.new("RGB", (8, 8)), "GIF"), 400, "not an image this editor reads"),
    (lambda: b"\0" * (MAX_UPLOAD_BYTES + 1), 413, "larger than the 10 MB limit"),
])
def test_bad_uploads_answer_one_line_and_keep_the_edit(make, status, words):
    editor = tiny_editor(mean_inversion)
    client = TestClient(create_app(editor))
    client.post("/api/sample", json={"seed": 2})
    response = client.post("/api/upload", content=make())
    assert response.status_code == status and words in response.json()["error"]
    final = client.post("/api/render", json={"final": True}).json()  # the seed's edit goes on
    expected = unit_pixels(editor.synthesize(seed_w_plus(editor.generator, [2]), editor.full))
    assert (png_pixels(final["image"]) - expected).abs().max() <= PIXEL


def test_an_inversion_may_optimise_with_autograd():
    """A projection optimises W+ by gradient descent: the editor must not call it under inference mode."""
    editor = tiny_editor()

    def project(image):
        w_plus = seed_w_plus(editor.generator, [0]).detach().requires_grad_()
        loss = (editor.generator.synthesize(w_plus) - image).pow(2).mean()
        loss.backward()
        return w_plus - 0.1 * w_plus.grad

    editor.invert = project
    answer = TestClient(create_app(editor)).post("/api/upload", content=png_bytes(Image.new("RGB", (16, 16))))
    assert answer.status_code == 200 and answer.json()["kind"] == "reconstruction"


def test_an_inversion_of_the_wrong_shape_is_refused():
    client = TestClient(create_app(tiny_editor(lambda image: torch.zeros(1, 18, 512))))
    response = client.post("/api/upload", content=png_bytes(Image.new("RGB", (16, 16))))
    assert "the inversion returned W+ of shape (1, 18, 512), not (1, 6, 16)" in response.json()["error"]


def test_a_failing_inversion_answers_500_and_the_server_goes_on():
    def broken(image):
        raise RuntimeError("encoder exploded")

    client = TestClient(create_app(tiny_editor(broken)), raise_server_exceptions=False)
    response = client.post("/api/upload", content=png_bytes(Image.new("RGB", (16, 16))))
    assert response.status_code == 500
    assert response.json()["error"] == "the server failed on this request (RuntimeError); see its log"
    assert client.post("/api/sample", json={"seed": 1}).status_code == 200


def test_concurrent_previews_on_several_sub_generators_each_render_their_own_edit(editor):
    """Threads rendering at once, each at its own strength and sub-generator: every answer must be its own edit at
    its own sub-generator (the generator's active sub-generator is shared state)."""
    configs = [RenderConfig(4, 0.25), RenderConfig(8, 0.5), RenderConfig(16, 0.75), RenderConfig(16, 1.0)]
    answers, failures = {}, []
    with serving_in_thread(create_app(editor)) as url:
        post(url, "/api/sample", {"seed": 9})

        def worker(index: int) -> None:
            try:
                config = configs[index % len(configs)]
                body = {"strengths": {"sefa_1": -3 + 0.5 * index}, "resolution": config.resolution,
                        "ratio": config.ratio}
                answers[index] = (config, body["strengths"], post(url, "/api/render", body))
            except Exception as error:  # noqa: BLE001 (reported below)
                failures.append(repr(error))

        threads = [threading.Thread(target=worker, args=(index,)) for index in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert post(url, "/api/render", {"final": True})["resolution"] == 16  # the server still answers
    assert not failures and len(answers) == 12
    w_seed = seed_w_plus(editor.generator, [9]).detach()
    for config, strengths, answer in answers.values():
        expected = unit_pixels(editor.synthesize(edited(editor, w_seed, strengths), config))
        assert (png_pixels(answer["image"]) - expected).abs().max() <= PIXEL
    assert len({answer["number"] for _, _, answer in answers.values()}) == 12


def post(url: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


# ----------------------------------------------------------------------------------------------------------
# ganslim edit


class FakeServer:
    """Stands in for uvicorn: records the app and the socket instead of serving."""

    def __init__(self, app) -> None:
        self.app, self.sockets = app, None

    def run(self, sockets) -> None:
        self.sockets = sockets
        for sock in sockets:
            sock.close()


@pytest.fixture
def fake_servers(monkeypatch):
    made = []

    def make(app):
        made.append(FakeServer(app))
        return made[-1]

    monkeypatch.setattr("ganslim.editing.web.uvicorn_server", make)
    return made


@pytest.mark.parametrize("encoder, steps", [(True, 0), (True, 2), (False, 2)])
def test_cli_edit_serves_the_directions_file_and_inverts_uploads(tmp_path, capsys, fake_servers, encoder, steps):
    """Uploads are inverted by the encoder, the encoder refined by projection, or projection from the mean W."""
    ckpt = save_tiny_stylegan2(tmp_path / "g.pt")
    generator = tiny_stylegan2()
    directions = save_directions(tmp_path / "d.safetensors", ["smile", "age"], sefa_directions(generator, 2), "sefa",
                                 generator)
    options = ["--project-steps", str(steps)]
    if encoder:
        options += ["--encoder", str(save_encoder(tmp_path / "enc.pt", encoder_for(generator, **TINY_ENCODER),
                                                  generator))]
    assert main(["edit", "--generator", str(ckpt), "--directions", str(directions), "--port", "0", *options]) == 0
    out = capsys.readouterr().out
    assert "serving the editor on http://127.0.0.1:" in out and "default preview" in out
    client = TestClient(fake_servers[0].app)
    config = client.get("/api/config").json()
    assert [d["name"] for d in config["directions"]] == ["smile", "age"] and config["upload"] is True
    assert client.post("/api/upload", content=png_bytes(Image.new("RGB", (16, 16)))).status_code == 200


def test_cli_edit_computes_sefa_directions_without_a_file(tmp_path, fake_servers):
    ckpt = save_tiny_stylegan2(tmp_path / "g.pt")
    assert main(["edit", "--generator", str(ckpt), "--count", "2", "--port", "0"]) == 0
    config = TestClient(fake_servers[0].app).get("/api/config").json()
    assert [d["name"] for d in config["directions"]] == ["sefa_0", "sefa_1"] and config["upload"] is False


def test_cli_edit_bad_options_are_one_line(tmp_path, capsys, fake_servers):
    ckpt = save_tiny_stylegan2(tmp_path / "g.pt")
    wider = tiny_stylegan2()
    other = save_directions(tmp_path / "d.safetensors", ["a"], torch.eye(16)[:1], "sefa", wider)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        cases = [(["--directions", str(other), "--count", "3"], "--count sets how many SeFa directions"),
                 (["--port", str(busy.getsockname()[1])], f"cannot listen on 127.0.0.1:{busy.getsockname()[1]}"),
                 (["--preview-ms", "-1"], "--preview-ms -1.0 must be a positive number"),
                 (["--generator", str(save_tiny_student(tmp_path / "s.pt"))],
                  "this is a MobileStyleGANGenerator: pass a stylegan2 checkpoint")]
        for flags, words in cases:
            assert main(["edit", "--generator", str(ckpt), *flags]) == 2
            err = capsys.readouterr().err
            assert err.startswith("ganslim edit: error: ") and words in err and err.count("\n") == 1
    finally:
        busy.close()
    assert not fake_servers
