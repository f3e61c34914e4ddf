// Draw a digit, send it to POST /feature-maps, and paint the answer: prediction, probabilities, the
// 28x28 input the model saw and every layer's feature maps. Plain script, no build step, no globals
// but `window.mnistPage` (numbers the browser tests read).
"use strict";

(() => {
  const ENDPOINT = "/feature-maps?format=compact&layers=conv1,pool1,conv2,pool2,conv3,flatten";
  const LIVE_INTERVAL_MS = 90; // while drawing: at most one request per interval, never two at once
  const BRUSH = 26; // px on the 320 px canvas: about 2.2 px once the digit is scaled into MNIST's 20 px box
  const GAP = 2; // px between tiles
  const EMPTY_TILE = [38, 42, 56];
  const BACKGROUND = [23, 26, 35]; // the panel colour, behind the tiles

  // How each layer is laid out: tiles per row (wide screen, phone) and the zoom of each tile (nearest neighbour).
  const LAYERS = [
    { name: "conv1", shape: [32, 26, 26], cols: [16, 8], zoom: 2, kind: "3×3 conv + ReLU", about: "32 filters on the image: strokes and edges at each angle." },
    { name: "pool1", shape: [32, 13, 13], cols: [16, 8], zoom: 4, kind: "2×2 max pool", about: "The same 32 features at half the resolution." },
    { name: "conv2", shape: [64, 11, 11], cols: [16, 8], zoom: 5, kind: "3×3 conv + ReLU", about: "64 filters over conv1: corners, curves, stroke ends." },
    { name: "pool2", shape: [64, 5, 5], cols: [16, 8], zoom: 10, kind: "2×2 max pool", about: "Coarser still: roughly where each feature is." },
    { name: "conv3", shape: [128, 3, 3], cols: [32, 16], zoom: 8, kind: "3×3 conv + ReLU", about: "128 abstract parts of digits, hardly a picture any more." },
    { name: "flatten", shape: [1152], cols: [144, 72], zoom: 6, kind: "conv3 as one vector", about: "All 128×3×3 values of conv3 in a row: the input of the linear layer that scores the ten digits." },
  ];
  const NARROW = window.matchMedia("(max-width: 600px)"); // phones get half as many tiles per row

  // Viridis (matplotlib's values at ten stops, as the service's PNGs use) as 256 packed RGBA pixels.
  const VIRIDIS_STOPS = [
    [68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
    [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37],
  ];
  const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
  const pack = ([r, g, b]) => (LITTLE_ENDIAN ? (255 << 24) | (b << 16) | (g << 8) | r : (r << 24) | (g << 16) | (b << 8) | 255) >>> 0;
  const VIRIDIS = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    const t = (i / 255) * (VIRIDIS_STOPS.length - 1);
    const k = Math.min(Math.floor(t), VIRIDIS_STOPS.length - 2);
    const f = t - k;
    VIRIDIS[i] = pack([0, 1, 2].map((c) => Math.round(VIRIDIS_STOPS[k][c] * (1 - f) + VIRIDIS_STOPS[k + 1][c] * f)));
  }
  const GRAYS = new Uint32Array(256).map((_, i) => pack([i, i, i]));

  const $ = (id) => document.getElementById(id);
  const pad = $("draw-canvas");
  const padCtx = pad.getContext("2d");
  const preview = $("input-preview");
  const previewCtx = preview.getContext("2d");
  const prediction = $("prediction");
  const confidence = $("confidence");
  const statusLine = $("status");
  const timing = $("timing");
  const announce = $("announce");
  const dialog = $("detail");
  const detailCanvas = $("detail-canvas");

  // finals: stroke ends and files sent; answered: the number of the latest of those answered (or failed);
  // updates: answers painted; lastUpdateMs: from the stroke's end (or the file's choice) to the painted answer.
  const page = (window.mnistPage = { finals: 0, answered: 0, updates: 0, lastUpdateMs: null, errors: 0 });
  let latest = null; // the last answer: {body, maps: {name: {codes, entry}}}
  let hasInk = false;

  // ---- layer grids -----------------------------------------------------------------------------

  // Tiles of one layer: a 3-D layer is one tile per channel; a vector is one tile of `cols`-wide rows.
  function gridSize(layer, cols) {
    if (layer.shape.length === 1) {
      const h = Math.ceil(layer.shape[0] / cols);
      return { channels: 1, h, w: cols, cols: 1, rows: 1, tileW: cols * layer.zoom, tileH: h * layer.zoom };
    }
    const [channels, h, w] = layer.shape;
    return { channels, h, w, cols, rows: Math.ceil(channels / cols), tileW: w * layer.zoom, tileH: h * layer.zoom };
  }

  // Sizes every layer's canvas for the screen width, then paints the latest answer (or empty tiles).
  function layoutLayers() {
    for (const layer of LAYERS) {
      const g = (layer.grid = gridSize(layer, layer.cols[NARROW.matches ? 1 : 0]));
      layer.canvas.width = g.cols * (g.tileW + GAP) + GAP;
      layer.canvas.height = g.rows * (g.tileH + GAP) + GAP;
      layer.image = layer.ctx.createImageData(layer.canvas.width, layer.canvas.height);
      layer.pixels = new Uint32Array(layer.image.data.buffer);
      const map = latest && latest.maps[layer.name];
      if (map) drawLayer(layer, map.codes, map.entry);
      else drawEmptyLayer(layer);
    }
  }

  function buildLayers() {
    const list = $("feature-maps");
    for (const layer of LAYERS) {
      const figure = document.createElement("figure");
      figure.className = "layer";
      const caption = document.createElement("figcaption");
      const title = document.createElement("h3");
      title.textContent = layer.name;
      const shape = document.createElement("p");
      shape.className = "shape";
      shape.textContent = layer.shape.join(" × ");
      const kind = document.createElement("p");
      kind.className = "kind";
      kind.textContent = layer.kind;
      const about = document.createElement("p");
      about.className = "about";
      about.textContent = layer.about;
      layer.rangeText = document.createElement("p");
      layer.rangeText.className = "range";
      caption.append(title, shape, kind, about, layer.rangeText);

      const canvas = (layer.canvas = document.createElement("canvas"));
      canvas.dataset.layer = layer.name;
      canvas.setAttribute("role", layer.shape.length === 3 ? "button" : "img");
      if (layer.shape.length === 3) {
        canvas.tabIndex = 0;
        canvas.setAttribute("aria-label", `${layer.name}: ${layer.shape[0]} feature maps. Press Enter to enlarge one.`);
        canvas.addEventListener("click", (event) => openDetail(layer, channelAt(layer, event)));
        canvas.addEventListener("keydown", (event) => {
          if (event.key === "Enter" || event.key === " ") {
            event.preventDefault();
            openDetail(layer, 0);
          }
        });
      } else {
        canvas.setAttribute("aria-label", `${layer.name}: ${layer.shape[0]} values as a strip`);
      }
      layer.ctx = canvas.getContext("2d");
      const frame = document.createElement("div");
      frame.className = "layer-canvas";
      frame.append(canvas);
      figure.append(caption, frame);
      list.append(figure);
    }
    layoutLayers();
    NARROW.addEventListener("change", layoutLayers);
  }

  function drawEmptyLayer(layer) {
    const g = layer.grid;
    layer.pixels.fill(pack(BACKGROUND));
    const tile = pack(EMPTY_TILE);
    for (let c = 0; c < g.channels; c++) {
      fillTile(layer, c, () => tile);
    }
    layer.ctx.putImageData(layer.image, 0, 0);
    layer.rangeText.textContent = "";
  }

  // Paints tile `c` of a layer: colourAt(y, x) -> packed pixel for each value of the map.
  function fillTile(layer, c, colourAt) {
    const g = layer.grid;
    const z = layer.zoom;
    const width = layer.image.width;
    const top = GAP + Math.floor(c / g.cols) * (g.tileH + GAP);
    const left = GAP + (c % g.cols) * (g.tileW + GAP);
    const px = layer.pixels;
    for (let y = 0; y < g.h; y++) {
      for (let x = 0; x < g.w; x++) {
        const colour = colourAt(y, x);
        let row = (top + y * z) * width + left + x * z;
        for (let dy = 0; dy < z; dy++, row += width) px.fill(colour, row, row + z);
      }
    }
  }

  // One base64 decode per layer: the uint8 codes in C order of `shape`.
  function decode(entry) {
    const text = atob(entry.data);
    const codes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) codes[i] = text.charCodeAt(i);
    return codes;
  }

  function codeRange(codes, start, end) {
    let lo = 255;
    let hi = 0;
    for (let i = start; i < end; i++) {
      const q = codes[i];
      if (q < lo) lo = q;
      if (q > hi) hi = q;
    }
    return [lo, hi];
  }

  function drawLayer(layer, codes, entry) {
    const g = layer.grid;
    layer.pixels.fill(pack(BACKGROUND));
    if (layer.shape.length === 1) {
      // One vector: normalised as a whole, laid out in rows of `cols` values.
      const [lo, hi] = codeRange(codes, 0, codes.length);
      const k = hi > lo ? 255 / (hi - lo) : 0;
      const n = codes.length;
      fillTile(layer, 0, (y, x) => {
        const i = y * g.w + x;
        return i < n ? VIRIDIS[((codes[i] - lo) * k) | 0] : pack(BACKGROUND);
      });
    } else {
      const size = g.h * g.w;
      for (let c = 0; c < g.channels; c++) {
        const base = c * size;
        const [lo, hi] = codeRange(codes, base, base + size); // per-channel normalisation
        const k = hi > lo ? 255 / (hi - lo) : 0;
        fillTile(layer, c, (y, x) => VIRIDIS[((codes[base + y * g.w + x] - lo) * k) | 0]);
      }
    }
    layer.ctx.putImageData(layer.image, 0, 0);
    layer.rangeText.textContent = `values ${fmt(entry.min)} to ${fmt(entry.max)}`;
  }

  function channelAt(layer, event) {
    const g = layer.grid;
    const rect = layer.canvas.getBoundingClientRect();
    const x = ((event.clientX - rect.left) * layer.canvas.width) / rect.width;
    const y = ((event.clientY - rect.top) * layer.canvas.height) / rect.height;
    const col = Math.min(g.cols - 1, Math.max(0, Math.floor((x - GAP / 2) / (g.tileW + GAP))));
    const row = Math.min(g.rows - 1, Math.max(0, Math.floor((y - GAP / 2) / (g.tileH + GAP))));
    return Math.min(g.channels - 1, row * g.cols + col);
  }

  // ---- the enlarged map ------------------------------------------------------------------------

  const detail = { layer: null, channel: 0 };

  function openDetail(layer, channel) {
    detail.layer = layer;
    detail.channel = channel;
    drawDetail();
    if (!dialog.open) dialog.showModal();
  }

  function drawDetail() {
    const { layer, channel } = detail;
    if (!layer) return;
    const g = layer.grid;
    $("detail-title").textContent = `${layer.name} · channel ${channel + 1} of ${g.channels}`;
    if (detailCanvas.width !== g.w) {
      detailCanvas.width = g.w;
      detailCanvas.height = g.h;
    }
    const ctx = detailCanvas.getContext("2d");
    const map = latest && latest.maps[layer.name];
    const image = ctx.createImageData(g.w, g.h);
    const px = new Uint32Array(image.data.buffer);
    if (!map) {
      px.fill(pack(EMPTY_TILE));
      $("detail-range").textContent = "Draw a digit to see this map.";
    } else {
      const size = g.h * g.w;
      const base = channel * size;
      const [lo, hi] = codeRange(map.codes, base, base + size);
      const k = hi > lo ? 255 / (hi - lo) : 0;
      for (let i = 0; i < size; i++) px[i] = VIRIDIS[((map.codes[base + i] - lo) * k) | 0];
      const value = (q) => map.entry.offset + map.entry.scale * q;
      $("detail-range").textContent =
        `This map: ${fmt(value(lo))} (dark) to ${fmt(value(hi))} (bright). ` +
        `Whole layer: ${fmt(map.entry.min)} to ${fmt(map.entry.max)}.`;
    }
    ctx.putImageData(image, 0, 0);
  }

  function stepDetail(delta) {
    if (!detail.layer) return;
    const n = detail.layer.grid.channels;
    detail.channel = (detail.channel + delta + n) % n;
    drawDetail();
  }

  // ---- prediction, bars, input -----------------------------------------------------------------

  const bars = [];
  function buildBars() {
    const list = $("probabilities");
    for (let d = 0; d < 10; d++) {
      const item = document.createElement("li");
      const label = document.createElement("span");
      label.className = "bar-digit";
      label.textContent = String(d);
      const track = document.createElement("span");
      track.className = "bar-track";
      const fill = document.createElement("span");
      fill.className = "bar-fill";
      track.append(fill);
      const value = document.createElement("span");
      value.className = "bar-value";
      item.append(label, track, value);
      list.append(item);
      bars.push({ item, fill, value });
    }
    showProbabilities(null);
  }

  function showProbabilities(probabilities, best = -1) {
    bars.forEach((bar, d) => {
      const p = probabilities ? probabilities[d] : 0;
      bar.fill.style.transform = `scaleX(${p})`;
      bar.value.textContent = probabilities ? percent(p) : "";
      bar.item.classList.toggle("best", d === best);
    });
  }

  function drawInput(entry) {
    const image = previewCtx.createImageData(28, 28);
    const px = new Uint32Array(image.data.buffer);
    if (entry) {
      const codes = decode(entry);
      for (let i = 0; i < 784; i++) px[i] = GRAYS[codes[i]];
    } else {
      px.fill(pack([0, 0, 0]));
    }
    previewCtx.putImageData(image, 0, 0);
  }

  function render(body) {
    const maps = {};
    for (const entry of body.layers) maps[entry.name] = { codes: decode(entry), entry };
    latest = { body, maps };
    prediction.textContent = String(body.digit);
    confidence.textContent = `${percent(body.confidence)} sure`;
    confidence.classList.toggle("unsure", body.confidence < 0.6);
    showProbabilities(body.probabilities, body.digit);
    drawInput(body.input);
    for (const layer of LAYERS) if (maps[layer.name]) drawLayer(layer, maps[layer.name].codes, maps[layer.name].entry);
    if (dialog.open) drawDetail();
    setStatus("");
    document.body.dataset.state = "ready";
  }

  function resetResults(message) {
    latest = null;
    prediction.textContent = "";
    confidence.textContent = message;
    confidence.classList.remove("unsure");
    showProbabilities(null);
    drawInput(null);
    for (const layer of LAYERS) drawEmptyLayer(layer);
    timing.textContent = "";
    if (dialog.open) drawDetail();
  }

  const fmt = (v) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2));
  const percent = (p) => `${(p * 100).toFixed(p >= 0.995 || p < 0.001 ? 0 : 1)}%`;

  function setStatus(text, isError = false) {
    statusLine.textContent = text;
    statusLine.classList.toggle("error", isError);
  }

  // ---- talking to the service ------------------------------------------------------------------

  let inFlight = null; // {controller, final}
  let liveTimer = 0;
  let lastSent = -Infinity;
  let pendingLive = false;

  // Sends one image; a newer request aborts an older one, so an answer on screen is never stale.
  async function send(blob, filename, { final = false, startedAt = performance.now(), fromCanvas = true } = {}) {
    if (inFlight) inFlight.controller.abort();
    const controller = new AbortController();
    const mine = { controller, final };
    const number = final ? ++page.finals : 0;
    inFlight = mine;
    lastSent = performance.now();
    const form = new FormData();
    form.append("file", blob, filename);
    const sentAt = performance.now();
    try {
      const response = await fetch(ENDPOINT, { method: "POST", body: form, signal: controller.signal });
      const body = await response.json().catch(() => ({ error: `the service answered ${response.status} without JSON` }));
      const answeredAt = performance.now();
      if (inFlight !== mine) return;
      if (!response.ok) {
        if (final) {
          showError(response.status, body.error || "", fromCanvas);
          page.answered = number;
        }
        return; // mid-stroke: keep the last good answer; the stroke's end will report
      }
      render(body);
      if (final) {
        page.answered = number;
        const done = performance.now();
        const ms = done - startedAt;
        page.lastUpdateMs = ms;
        // Where the time went: encoding the PNG, the round trip (server included), painting.
        page.lastBreakdownMs = { encode: sentAt - startedAt, request: answeredAt - sentAt, render: done - answeredAt, server: body.timings_ms.total };
        page.updates += 1;
        document.body.dataset.updateMs = ms.toFixed(1);
        document.body.dataset.updates = String(page.updates);
        const after = fromCanvas ? "the stroke" : "choosing the file";
        timing.textContent = `Updated ${Math.round(ms)} ms after ${after} (model ${body.timings_ms.total.toFixed(0)} ms)`;
        announce.textContent = `Looks like a ${body.digit}, ${percent(body.confidence)} sure.`;
      }
    } catch (error) {
      if (error.name === "AbortError") return;
      if (inFlight !== mine) return;
      showError(0, "", fromCanvas);
      if (final) page.answered = number;
    } finally {
      if (inFlight === mine) {
        inFlight = null;
        if (pendingLive) scheduleLive();
      }
    }
  }

  function showError(status, message, fromCanvas) {
    page.errors += 1;
    let text;
    if (status === 422 && fromCanvas) text = "Draw a digit… the model needs some ink to read.";
    else if (status === 0) text = "The service did not answer. Is it still running? Try again in a moment.";
    else text = message ? message[0].toUpperCase() + message.slice(1) : `The service answered ${status}.`;
    resetResults("No prediction");
    setStatus(text, true);
    announce.textContent = text;
    document.body.dataset.state = "error";
  }

  // The pad as a PNG file. NOTE: toDataURL, not toBlob: Chrome runs toBlob in an idle task, which waits
  // behind the frames drawing produces (~12 ms); encoding 320x320 here takes ~1 ms.
  function padPng() {
    const text = atob(pad.toDataURL("image/png").slice("data:image/png;base64,".length));
    const bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    return new Blob([bytes], { type: "image/png" });
  }

  function sendCanvas(final, startedAt) {
    if (!hasInk) return;
    pendingLive = false;
    send(padPng(), "drawing.png", { final, startedAt });
  }

  // While drawing: one request at a time, at most every LIVE_INTERVAL_MS.
  function scheduleLive() {
    pendingLive = true;
    if (liveTimer || inFlight) return; // the answer in flight schedules the next one
    const wait = Math.max(0, lastSent + LIVE_INTERVAL_MS - performance.now());
    liveTimer = setTimeout(() => {
      liveTimer = 0;
      if (pendingLive && stroke) sendCanvas(false);
    }, wait);
  }

  // ---- drawing ---------------------------------------------------------------------------------

  let stroke = null; // {id, x, y} while a pointer is down

  function clearPad() {
    padCtx.fillStyle = "#000";
    padCtx.fillRect(0, 0, pad.width, pad.height);
    hasInk = false;
    pad.parentElement.classList.remove("inked");
  }

  function point(event) {
    const rect = pad.getBoundingClientRect();
    return [((event.clientX - rect.left) * pad.width) / rect.width, ((event.clientY - rect.top) * pad.height) / rect.height];
  }

  function line(x0, y0, x1, y1) {
    padCtx.beginPath();
    padCtx.moveTo(x0, y0);
    padCtx.lineTo(x1, y1);
    padCtx.stroke();
  }

  function startStroke(event) {
    if (event.button !== 0 || stroke) return;
    event.preventDefault();
    pad.setPointerCapture(event.pointerId);
    const [x, y] = point(event);
    stroke = { id: event.pointerId, x, y };
    Object.assign(padCtx, { strokeStyle: "#fff", lineWidth: BRUSH, lineCap: "round", lineJoin: "round" });
    padCtx.beginPath(); // a dot, so a tap counts (a zero-length line would draw nothing)
    padCtx.arc(x, y, BRUSH / 2, 0, 2 * Math.PI);
    padCtx.fillStyle = "#fff";
    padCtx.fill();
    hasInk = true;
    pad.parentElement.classList.add("inked");
    scheduleLive();
  }

  function moveStroke(event) {
    if (!stroke || event.pointerId !== stroke.id) return;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    for (const e of events.length ? events : [event]) {
      const [x, y] = point(e);
      line(stroke.x, stroke.y, x, y);
      stroke.x = x;
      stroke.y = y;
    }
    scheduleLive();
  }

  function endStroke(event) {
    if (!stroke || event.pointerId !== stroke.id) return;
    const startedAt = performance.now();
    stroke = null;
    clearTimeout(liveTimer);
    liveTimer = 0;
    sendCanvas(true, startedAt);
  }

  // ---- files -----------------------------------------------------------------------------------

  async function useFile(file) {
    if (!file) return;
    const startedAt = performance.now();
    clearPad();
    try {
      // Shown on the pad (fitted, centred) so one can draw over it; the file itself is what is sent.
      const bitmap = await createImageBitmap(file);
      const scale = Math.min(pad.width / bitmap.width, pad.height / bitmap.height);
      const w = bitmap.width * scale;
      const h = bitmap.height * scale;
      padCtx.imageSmoothingEnabled = scale < 1;
      padCtx.drawImage(bitmap, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
      bitmap.close();
      hasInk = true;
      pad.parentElement.classList.add("inked");
    } catch {
      // Not an image the browser can show: the service still says what is wrong with it.
    }
    await send(file, file.name || "upload", { final: true, startedAt, fromCanvas: false });
  }

  // ---- wiring ----------------------------------------------------------------------------------

  function clearAll() {
    if (inFlight) inFlight.controller.abort();
    inFlight = null;
    clearTimeout(liveTimer);
    liveTimer = 0;
    pendingLive = false;
    clearPad();
    resetResults("Draw to start");
    setStatus("");
    announce.textContent = "Cleared.";
    document.body.dataset.state = "empty";
  }

  function wire() {
    pad.addEventListener("pointerdown", startStroke);
    pad.addEventListener("pointermove", moveStroke);
    pad.addEventListener("pointerup", endStroke);
    pad.addEventListener("pointercancel", endStroke);
    $("clear").addEventListener("click", clearAll);
    const input = $("file-input");
    input.addEventListener("change", () => {
      useFile(input.files[0]);
      input.value = ""; // choosing the same file again still fires `change`
    });
    const zone = $("pad");
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("dragging");
      useFile(event.dataTransfer.files[0]);
    });
    // A drop that misses the pad must not navigate away from the page.
    for (const type of ["dragover", "drop"]) document.addEventListener(type, (event) => event.preventDefault());
    $("detail-close").addEventListener("click", () => dialog.close());
    $("detail-prev").addEventListener("click", () => stepDetail(-1));
    $("detail-next").addEventListener("click", () => stepDetail(1));
    dialog.addEventListener("keydown", (event) => {
      if (event.key === "ArrowLeft") stepDetail(-1);
      else if (event.key === "ArrowRight") stepDetail(1);
    });
    dialog.addEventListener("click", (event) => {
      if (event.target === dialog) dialog.close(); // a click on the backdrop
    });
  }

  buildBars();
  buildLayers();
  clearAll();
  announce.textContent = "";
  wire();
})();
