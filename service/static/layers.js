// Layer grids: one canvas per output of the chosen model, laid out from the output's shape and the width
// there is (a (C, H, W) output is C tiles filling each row; a vector is one strip of cells), painted from
// POST /feature-maps' compact codes. Nothing here names a layer: names, shapes and kinds come from GET /models
// and the model's card.

const GAP = 2; // CSS px between tiles
const MIN_TILE = 12; // CSS px: smaller tiles are never chosen while a larger one fits
const MAX_LAYER_HEIGHT = 320; // CSS px a layer aims to stay within, so many channels get smaller tiles
const VECTOR_CELL = 10; // CSS px a vector's cell aims for
const VECTOR_ROW = 16; // CSS px: a vector's rows are never taller than this
const EMPTY_ROW_COST = 0.5; // how much an empty last row weighs against a tile size off its target
const EMPTY_TILE = [38, 42, 56];
const BACKGROUND = [23, 26, 35]; // the panel colour, behind the tiles

// A sentence per kind of output (service/contract.py's kinds); the card's "type" says what the layer is.
const ABOUT = {
  conv: "One map per filter, brighter where its pattern (an edge, a curve, a stroke end) appears.",
  pool: "The layer before at lower resolution: the strongest response in each patch.",
  block: "A residual block: its maps add new features to the ones it was given.",
  flatten: "Every value of the maps before it in one vector, the input of the dense layer.",
  gap: "Each map before it averaged to one number: how much of each feature the drawing holds.",
  dense: "A weighted sum of every value before it.",
  probabilities: "The ten scores as probabilities.",
};

// Viridis (matplotlib's values at ten stops, as the service's PNGs use) as 256 packed RGBA pixels.
const VIRIDIS_STOPS = [
  [68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
  [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37],
];
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
export const pack = ([r, g, b]) =>
  (LITTLE_ENDIAN ? (255 << 24) | (b << 16) | (g << 8) | r : (r << 24) | (g << 16) | (b << 8) | 255) >>> 0;
const VIRIDIS = new Uint32Array(256);
for (let i = 0; i < 256; i++) {
  const t = (i / 255) * (VIRIDIS_STOPS.length - 1);
  const k = Math.min(Math.floor(t), VIRIDIS_STOPS.length - 2);
  const f = t - k;
  VIRIDIS[i] = pack([0, 1, 2].map((c) => Math.round(VIRIDIS_STOPS[k][c] * (1 - f) + VIRIDIS_STOPS[k + 1][c] * f)));
}
export const GRAYS = new Uint32Array(256).map((_, i) => pack([i, i, i]));

const $ = (id) => document.getElementById(id);
const list = $("feature-maps");
const dialog = $("detail");
const detailCanvas = $("detail-canvas");
const state = { layers: [], maps: null, width: 0 }; // maps: {name: {codes, entry}} of the latest answer

// Class scores (ten values) are the answer's bars, not a grid.
const isScores = (output) => ["dense", "probabilities"].includes(output.kind) && output.shape.length === 1 && output.shape[0] === 10;

/** The outputs the page draws as grids, in forward order. */
export const gridOutputs = (outputs) => outputs.filter((output) => !isScores(output));

// ---- layout --------------------------------------------------------------------------------------

// Tiles per row: the count whose tile size is nearest `target`, an empty last row weighing against it.
function chooseColumns(count, width, gap, target, smallest) {
  let best = 1;
  let bestCost = Infinity;
  for (let cols = 1; cols <= count; cols++) {
    const size = (width - gap * (cols + 1)) / cols;
    if (size < smallest && cols > 1) break; // more columns only make tiles smaller
    const empty = (Math.ceil(count / cols) * cols - count) / cols;
    const cost = Math.abs(Math.log(size / target)) + EMPTY_ROW_COST * empty;
    if (cost < bestCost) [best, bestCost] = [cols, cost];
  }
  return best;
}

// For each canvas pixel along one axis: (tile << 16) | the source index it shows, or -1 in a gap.
function spans(tiles, size, gap, cells, length) {
  const map = new Int32Array(length).fill(-1);
  for (let t = 0; t < tiles; t++) {
    const start = Math.round(gap + t * (size + gap));
    const end = Math.min(length, Math.round(gap + t * (size + gap) + size));
    for (let p = start; p < end; p++) map[p] = (t << 16) | Math.min(cells - 1, Math.floor(((p - start) * cells) / (end - start)));
  }
  return map;
}

// Where every tile of one output goes on a canvas `cssWidth` wide: columns, rows and pixel maps.
function geometry(shape, cssWidth) {
  const spatial = shape.length === 3;
  const [channels, h, w] = spatial ? shape : [shape[0], 1, 1];
  const dpr = Math.min(2, window.devicePixelRatio || 1);
  let cols;
  if (spatial) {
    const roomy = Math.min(1, Math.max(0.6, cssWidth / 900)); // narrow screens: smaller tiles, more of them
    const target = Math.max(MIN_TILE, Math.min(Math.min(56, Math.max(24, 8 * w)) * roomy, Math.sqrt((cssWidth * MAX_LAYER_HEIGHT * w) / (h * channels))));
    cols = chooseColumns(channels, cssWidth, GAP, target, Math.min(w, MIN_TILE));
  } else {
    cols = chooseColumns(channels, cssWidth, 0, VECTOR_CELL, 2);
  }
  const rows = Math.ceil(channels / cols);
  const width = Math.max(1, Math.round(cssWidth * dpr));
  const gap = spatial ? Math.max(1, Math.round(GAP * dpr)) : 0;
  const tileW = (width - gap * (cols + 1)) / cols;
  const tileH = spatial ? (tileW * h) / w : Math.min(tileW, VECTOR_ROW * dpr);
  const height = Math.max(1, Math.round(gap + rows * (tileH + gap)));
  return {
    spatial, channels, h, w, cols, rows, gap, tileW, tileH, width, height,
    colMap: spans(cols, tileW, gap, w, width),
    rowMap: spans(rows, tileH, gap, h, height),
  };
}

// Sizes every canvas for the width its frame has, then paints the latest answer (or empty tiles).
function layout() {
  const frame = list.querySelector(".layer-canvas");
  const width = frame ? frame.clientWidth : 0;
  if (!width) return;
  state.width = width;
  for (const layer of state.layers) {
    const g = (layer.grid = geometry(layer.shape, width));
    layer.canvas.width = g.width;
    layer.canvas.height = g.height;
    layer.canvas.dataset.cols = String(g.cols);
    layer.canvas.dataset.rows = String(g.rows);
    layer.image = layer.ctx.createImageData(g.width, g.height);
    layer.pixels = new Uint32Array(layer.image.data.buffer);
    paintLayer(layer);
  }
}

// A width change (window, scrollbar, rotation) lays the grids out again; height changes do not.
new ResizeObserver(() => {
  const frame = list.querySelector(".layer-canvas");
  if (frame && frame.clientWidth !== state.width) layout();
}).observe(list);

// ---- building --------------------------------------------------------------------------------------

/** Replaces the grids with one per output in `outputs` (GET /models), captioned from the card's layers. */
export function showLayers(outputs, cardLayers = []) {
  const types = Object.fromEntries(cardLayers.map((layer) => [layer.name, layer.type]));
  if (dialog.open) dialog.close();
  detail.layer = null;
  state.maps = null;
  state.layers = outputs.map((output) => buildLayer(output, types[output.name]));
  list.replaceChildren(...state.layers.map((layer) => layer.figure));
  state.width = 0;
  layout();
}

function text(tag, className, content) {
  const element = document.createElement(tag);
  element.className = className;
  element.textContent = content;
  return element;
}

function buildLayer(output, type) {
  const layer = { name: output.name, shape: output.shape, kind: output.kind };
  const spatial = output.shape.length === 3;
  layer.rangeText = text("p", "range", "");
  const caption = document.createElement("figcaption");
  caption.append(
    text("h3", "", output.name),
    text("p", "shape", output.shape.join(" × ")),
    text("p", "kind", type || output.kind),
    text("p", "about", ABOUT[output.kind] || ""),
    layer.rangeText,
  );
  const canvas = (layer.canvas = document.createElement("canvas"));
  canvas.dataset.layer = output.name;
  canvas.setAttribute("role", spatial ? "button" : "img");
  if (spatial) {
    canvas.tabIndex = 0;
    canvas.setAttribute("aria-label", `${output.name}: ${output.shape[0]} feature maps. Press Enter to enlarge one.`);
    canvas.addEventListener("click", (event) => openDetail(layer, channelAt(layer, event)));
    canvas.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        openDetail(layer, 0);
      }
    });
  } else {
    canvas.setAttribute("aria-label", `${output.name}: ${output.shape[0]} values as a strip`);
  }
  layer.ctx = canvas.getContext("2d");
  const frame = document.createElement("div");
  frame.className = "layer-canvas";
  frame.append(canvas);
  layer.figure = document.createElement("figure");
  layer.figure.className = "layer";
  layer.figure.append(caption, frame);
  return layer;
}

// ---- painting --------------------------------------------------------------------------------------

/** One base64 decode per layer: the uint8 codes in C order of its shape. */
export function decode(entry) {
  const raw = atob(entry.data);
  const codes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) codes[i] = raw.charCodeAt(i);
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

/** Paints the answer's layers (body.layers of POST /feature-maps); names it lacks keep their tiles. */
export function paintLayers(body) {
  state.maps = {};
  for (const entry of body.layers) state.maps[entry.name] = { codes: decode(entry), entry };
  for (const layer of state.layers) paintLayer(layer);
  if (dialog.open) drawDetail();
}

/** Empty tiles everywhere. */
export function clearLayers() {
  state.maps = null;
  for (const layer of state.layers) paintLayer(layer);
  if (dialog.open) drawDetail();
}

// A colour per tile: a spatial output's channels each scaled to their own range, a vector as a whole.
function tileColours(layer, map) {
  const g = layer.grid;
  const size = g.h * g.w;
  const low = new Uint8Array(g.channels);
  const gain = new Float32Array(g.channels);
  if (!map) return { low, gain, codes: null, size };
  const whole = g.spatial ? null : codeRange(map.codes, 0, map.codes.length);
  for (let c = 0; c < g.channels; c++) {
    const [lo, hi] = whole || codeRange(map.codes, c * size, (c + 1) * size);
    low[c] = lo;
    gain[c] = hi > lo ? 255 / (hi - lo) : 0;
  }
  return { low, gain, codes: map.codes, size };
}

function paintLayer(layer) {
  const g = layer.grid;
  if (!g) return;
  const map = state.maps && state.maps[layer.name];
  const { low, gain, codes, size } = tileColours(layer, map);
  const px = layer.pixels;
  const empty = pack(EMPTY_TILE);
  px.fill(pack(BACKGROUND));
  for (let y = 0; y < g.height; y++) {
    const r = g.rowMap[y];
    if (r < 0) continue;
    const line = y * g.width;
    if (y > 0 && g.rowMap[y - 1] === r) {
      px.copyWithin(line, line - g.width, line); // the same source row as the line above
      continue;
    }
    const first = (r >> 16) * g.cols;
    const row = (r & 0xffff) * g.w;
    for (let x = 0; x < g.width; x++) {
      const col = g.colMap[x];
      if (col < 0) continue;
      const c = first + (col >> 16);
      if (c >= g.channels) break; // the last row's empty places
      px[line + x] = codes ? VIRIDIS[((codes[c * size + row + (col & 0xffff)] - low[c]) * gain[c]) | 0] : empty;
    }
  }
  layer.ctx.putImageData(layer.image, 0, 0);
  layer.rangeText.textContent = map ? `values ${fmt(map.entry.min)} to ${fmt(map.entry.max)}` : "";
}

function channelAt(layer, event) {
  const g = layer.grid;
  const rect = layer.canvas.getBoundingClientRect();
  const x = ((event.clientX - rect.left) * g.width) / rect.width;
  const y = ((event.clientY - rect.top) * g.height) / rect.height;
  const col = Math.min(g.cols - 1, Math.max(0, Math.floor((x - g.gap / 2) / (g.tileW + g.gap))));
  const row = Math.min(g.rows - 1, Math.max(0, Math.floor((y - g.gap / 2) / (g.tileH + g.gap))));
  return Math.min(g.channels - 1, row * g.cols + col);
}

export const fmt = (v) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2));

// ---- the enlarged map --------------------------------------------------------------------------------

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
  if (detailCanvas.width !== g.w || detailCanvas.height !== g.h) {
    detailCanvas.width = g.w;
    detailCanvas.height = g.h;
  }
  const ctx = detailCanvas.getContext("2d");
  const map = state.maps && state.maps[layer.name];
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
