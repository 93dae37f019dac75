"use strict";
// The editor page: start from a seed or an upload, preview each slider release with the chosen sub-generator,
// finalize with the full generator. Each image keeps the number of the render it shows (data-number), and the body
// says whether a request is in flight (data-busy), so a test can wait on both.

const $ = (id) => document.getElementById(id);
let config = null;
let latestPreview = 0; // only the newest preview request may replace the preview image
let pending = 0;

async function call(method, url, body, contentType = "application/json") {
  pending += 1;
  document.body.dataset.busy = "1";
  try {
    const options = { method, headers: {} };
    if (body !== undefined) {
      options.body = contentType === "application/json" ? JSON.stringify(body) : body;
      options.headers["Content-Type"] = contentType;
    }
    const response = await fetch(url, options);
    let data = null;
    try { data = await response.json(); } catch (error) { data = null; }
    if (!response.ok) {
      throw new Error(data && data.error ? data.error : `the server answered ${response.status}`);
    }
    return data;
  } finally {
    pending -= 1;
    if (pending === 0) document.body.dataset.busy = "0";
  }
}

function say(text, isError = false) {
  $("message").textContent = text;
  $("message").className = isError ? "error" : "";
}

function describe(render) {
  const width = render.ratio === 1 ? "full width" : `width ${render.ratio}`;
  return `${render.resolution} px, ${width}: ${render.ms.toFixed(1)} ms`;
}

function show(id, render, caption) {
  const image = $(id);
  image.src = render.image;
  image.dataset.number = String(render.number);
  image.dataset.resolution = String(render.resolution);
  image.dataset.ratio = String(render.ratio);
  $(`${id}-info`).textContent = `${caption} (${describe(render)})`;
}

function strengths() {
  const values = {};
  for (const slider of document.querySelectorAll("#sliders input")) values[slider.dataset.name] = Number(slider.value);
  return values;
}

function resetEdit() {
  for (const slider of document.querySelectorAll("#sliders input")) {
    slider.value = "0";
    slider.nextElementSibling.textContent = "0.00";
  }
  for (const id of ["preview", "final"]) { $(id).removeAttribute("src"); delete $(id).dataset.number; }
  $("preview-info").textContent = "Preview: move a slider";
  $("final-info").textContent = "Final: press Finalize";
  $("download").hidden = true;
  $("download-w").hidden = true;
  $("finalize").disabled = false;
}

function started(render, source) {
  resetEdit();
  show("reconstruction", render, `Reconstruction of ${source}`);
  say(`Loaded ${source}. Move a slider to preview an edit.`);
}

async function loadSample() {
  const seed = Number($("seed").value);
  try {
    started(await call("POST", "/api/sample", { seed }), `seed ${seed}`);
    $("input-figure").hidden = true;
  } catch (error) { say(error.message, true); }
}

async function upload() {
  const file = $("upload-file").files[0];
  if (!file) { say("Choose an image file first.", true); return; }
  try {
    const data = await call("POST", "/api/upload", file, file.type || "application/octet-stream");
    $("input").src = data.input;
    $("input-figure").hidden = false;
    started(data, `upload ${file.name}`);
  } catch (error) { say(error.message, true); }
}

async function preview() {
  const request = latestPreview += 1;
  const body = { strengths: strengths(), final: false,
                 resolution: Number($("resolution").value), ratio: Number($("ratio").value) };
  try {
    const render = await call("POST", "/api/render", body);
    if (request === latestPreview) show("preview", render, "Preview");
  } catch (error) { say(error.message, true); }
}

async function finalize() {
  try {
    show("final", await call("POST", "/api/render", { strengths: strengths(), final: true }), "Final");
    $("download").hidden = false;
    $("download-w").hidden = false;
    say("Finalized with the full generator: download the PNG or its W+.");
  } catch (error) { say(error.message, true); }
}

function configMs(resolution, ratio) {
  const found = config.configs.find((c) => c.resolution === resolution && c.ratio === ratio);
  return found ? found.ms : NaN;
}

function noteLatency() {
  const resolution = Number($("resolution").value), ratio = Number($("ratio").value);
  const full = configMs(config.full.resolution, config.full.ratio);
  $("latency-note").textContent = `Measured at start: this preview ${configMs(resolution, ratio).toFixed(1)} ms, ` +
    `full generator ${full.toFixed(1)} ms; latency target ${config.target_ms.toFixed(1)} ms.`;
  for (const cell of document.querySelectorAll("#latencies td[data-resolution]")) {
    const chosen = Number(cell.dataset.resolution) === resolution && Number(cell.dataset.ratio) === ratio;
    cell.className = chosen ? "chosen" : "";
  }
}

function option(select, value, text, selected) {
  const element = document.createElement("option");
  element.value = String(value);
  element.textContent = text;
  element.selected = selected;
  select.appendChild(element);
}

function buildControls() {
  for (const direction of config.directions) {
    const row = document.createElement("div");
    row.className = "slider";
    const name = document.createElement("span");
    name.textContent = direction.name;
    const slider = document.createElement("input");
    Object.assign(slider, { type: "range", min: -config.slider_range, max: config.slider_range, step: 0.05, value: 0 });
    slider.id = `slider-${direction.name}`;
    slider.dataset.name = direction.name;
    const value = document.createElement("span");
    value.textContent = "0.00";
    slider.addEventListener("input", () => { value.textContent = Number(slider.value).toFixed(2); });
    slider.addEventListener("change", preview);
    row.append(name, slider, value);
    $("sliders").appendChild(row);
  }
  const resolutions = [...new Set(config.configs.map((c) => c.resolution))];
  const ratios = [...new Set(config.configs.map((c) => c.ratio))];
  for (const r of resolutions) option($("resolution"), r, `${r} px`, r === config.default_preview.resolution);
  for (const q of ratios) option($("ratio"), q, `${q} x channels`, q === config.default_preview.ratio);
  const table = $("latencies");
  table.innerHTML = "<tr><th>ms</th>" + ratios.map((q) => `<th>${q}</th>`).join("") + "</tr>";
  for (const r of resolutions) {
    const cells = ratios.map((q) => `<td data-resolution="${r}" data-ratio="${q}">${configMs(r, q).toFixed(1)}</td>`);
    table.innerHTML += `<tr><th>${r} px</th>${cells.join("")}</tr>`;
  }
  for (const id of ["resolution", "ratio"]) {
    $(id).addEventListener("change", () => { noteLatency(); if ($("reconstruction").dataset.number) preview(); });
  }
  noteLatency();
  $("upload").disabled = !config.upload;
  $("upload-file").disabled = !config.upload;
  $("upload-note").textContent = config.upload
    ? `PNG, JPEG, WebP or BMP up to ${config.max_upload_mb} MB; inverted by the encoder and/or projection.`
    : "Uploading needs an inversion: restart ganslim edit with --encoder CKPT and/or --project-steps N.";
}

async function init() {
  try {
    config = await call("GET", "/api/config");
  } catch (error) { say(error.message, true); return; }
  $("title").textContent = config.title;
  $("subtitle").textContent = `${config.directions.length} direction(s); previews with Anycost sub-generators, ` +
    `finalize with the full ${config.full.resolution} px generator.`;
  buildControls();
  $("load-sample").addEventListener("click", loadSample);
  $("upload").addEventListener("click", upload);
  $("finalize").addEventListener("click", finalize);
  document.body.dataset.ready = "1";
}

init();
