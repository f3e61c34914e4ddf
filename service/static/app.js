// Draw a digit, send it to the chosen model's POST /feature-maps and POST /explain (and, comparing, every other
// model's POST /predict), and paint the answers, the 28x28 input the model saw, where the model looks
// (explain.js) and every layer's feature maps.
// The models and their layers come from GET /models and each model's card: nothing here names a layer or a
// model. Plain ES modules, no build step, no globals but `window.mnistPage` (what the browser tests read).

import { announcement, buildAnswers, onPickDigit, resetAnswers, showAnswer, showCards, showNoAnswer } from "./answers.js";
import { buildMethods, chooseExplainedModel, clearExplanation, explain, explanation, pickDigit, resetTarget } from "./explain.js";
import { GRAYS, clearLayers, decode, gridOutputs, pack, paintLayers, showLayers } from "./layers.js";

const LIVE_INTERVAL_MS = 90; // while drawing: at most one update per interval, never two at once
const BRUSH = 26; // px on the 320 px canvas: about 2.2 px once the digit is scaled into MNIST's 20 px box
const STORED_MODEL = "mnistPage.model"; // localStorage: the model chosen last time
const STORED_COMPARE = "mnistPage.compare"; // localStorage: "1" when comparing

const $ = (id) => document.getElementById(id);
const pad = $("draw-canvas");
const padCtx = pad.getContext("2d");
const preview = $("input-preview");
const previewCtx = preview.getContext("2d");
const statusLine = $("status");
const timing = $("timing");
const announce = $("announce");
const modelSelect = $("model-select");
const compareBox = $("compare");

// finals: stroke ends, files and re-sends of the drawing (a model switched, compare toggled); answered: the
// number of the latest of those answered (or failed); updates: answers painted; lastUpdateMs: from the
// stroke's end (or the file's choice) to every answer painted. ready: the models and their layers are shown.
const page = (window.mnistPage = { finals: 0, answered: 0, updates: 0, lastUpdateMs: null, errors: 0, ready: false, model: null, compare: false, explanation });
const models = { list: [], cards: {}, byName: {} }; // GET /models' entries, and each model's card
let hasInk = false;
let lastImage = null; // {blob, filename, fromCanvas}: what the answers on screen are for, sent again on a switch

// ---- models ---------------------------------------------------------------------------------------

const stored = (key) => {
  try {
    return localStorage.getItem(key);
  } catch {
    return null; // storage refused (a private window): the page still works, it just forgets
  }
};
const store = (key, value) => {
  try {
    localStorage.setItem(key, value);
  } catch {
    // as above
  }
};

async function getJson(url) {
  const response = await fetch(url);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw Object.assign(new Error(body.error || `${url} answered ${response.status}`), { status: response.status });
  return body;
}

async function loadModels() {
  const listing = await getJson("/models");
  models.list = listing.models;
  models.byName = Object.fromEntries(listing.models.map((model) => [model.name, model]));
  // The cards give each layer's human-readable type; a card that fails only costs the captions.
  const cards = await Promise.all(listing.models.map((model) => getJson(`/models/${encodeURIComponent(model.name)}`).catch(() => ({}))));
  listing.models.forEach((model, i) => (models.cards[model.name] = cards[i]));
  modelSelect.replaceChildren(
    ...listing.models.map((model) => new Option(`${model.name} (${model.architecture.name})`, model.name)),
  );
  buildAnswers(listing.models);
  buildMethods(listing.models);
  const remembered = stored(STORED_MODEL);
  const chosen = models.byName[remembered] ? remembered : listing.default_model;
  compareBox.checked = stored(STORED_COMPARE) === "1" && listing.models.length > 1;
  compareBox.disabled = listing.models.length < 2;
  modelSelect.disabled = listing.models.length < 2;
  chooseModel(chosen);
}

function describeModel(model) {
  const parts = [`${model.architecture.name}: ${model.architecture.description}`];
  parts.push(`${model.parameters.toLocaleString("en")} parameters`);
  // Two decimals: 99.67% and 99.58% are different models, and neither is 100%.
  if (typeof model.test_accuracy === "number") parts.push(`${(model.test_accuracy * 100).toFixed(2)}% right on the MNIST test set`);
  return parts.join(" · ");
}

// Shows `name`'s layers and answer card (and every card, comparing); the drawing is sent again.
function chooseModel(name) {
  const model = models.byName[name];
  page.model = name;
  page.compare = compareBox.checked;
  modelSelect.value = name;
  $("model-about").textContent = describeModel(model);
  $("layers-model").textContent = ` · ${name}`;
  $("card-link").href = `/models/${encodeURIComponent(name)}`;
  showLayers(gridOutputs(model.outputs), models.cards[name].layers);
  showCards(name, compareBox.checked);
  chooseExplainedModel(model, compareBox.checked);
  resetAnswers(lastImage ? "Asking…" : "Draw to start");
  clearExplanation(lastImage ? "Asking…" : undefined);
  drawInput(null);
  timing.textContent = "";
  if (lastImage) send(lastImage.blob, lastImage.filename, { final: true, fromCanvas: lastImage.fromCanvas });
}

// ---- the answer -----------------------------------------------------------------------------------

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
  showAnswer(page.model, body);
  drawInput(body.input);
  paintLayers(body);
  setStatus("");
  document.body.dataset.state = "ready";
}

function resetResults(message, mapMessage = undefined) {
  resetAnswers(message);
  drawInput(null);
  clearLayers();
  clearExplanation(mapMessage);
  timing.textContent = "";
}

function setStatus(text, isError = false) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", isError);
}

// ---- talking to the service -------------------------------------------------------------------------

let inFlight = null; // {controller, final}: one update (one request per model) at a time
let liveTimer = 0;
let lastSent = -Infinity;
let pendingLive = false;

async function post(url, blob, filename, signal) {
  const form = new FormData();
  form.append("file", blob, filename);
  const response = await fetch(url, { method: "POST", body: form, signal });
  const body = await response.json().catch(() => ({ error: `the service answered ${response.status} without JSON` }));
  return { response, body };
}

// Sends one image to the chosen model (its layers and where it looks) and, comparing, to every other (its
// answer); a newer update aborts an older one, so an answer on screen is never stale.
async function send(blob, filename, { final = false, startedAt = performance.now(), fromCanvas = true } = {}) {
  if (inFlight) inFlight.controller.abort();
  const controller = new AbortController();
  const mine = { controller, final };
  const number = final ? ++page.finals : 0;
  inFlight = mine;
  lastSent = performance.now();
  if (final) lastImage = { blob, filename, fromCanvas };
  const model = models.byName[page.model];
  const layers = gridOutputs(model.outputs).map((output) => output.name).join(",");
  const others = compareBox.checked ? models.list.filter((other) => other.name !== model.name) : [];
  const sentAt = performance.now();
  try {
    const primary = post(`/feature-maps?model=${encodeURIComponent(model.name)}&format=compact&layers=${layers}`, blob, filename, controller.signal);
    const rest = others.map((other) => answerOf(other.name, blob, filename, controller.signal, mine));
    rest.push(explain(blob, filename, controller.signal)); // the map: one more request of this update
    const { response, body } = await primary;
    const answeredAt = performance.now();
    if (inFlight !== mine) return;
    if (!response.ok) {
      controller.abort(); // the other models' answers would be for a drawing the page no longer shows
      if (final) {
        showError(response.status, body.error || "", fromCanvas);
        page.answered = number;
      }
      return; // mid-stroke: keep the last good answer; the stroke's end will report
    }
    render(body);
    await Promise.all(rest);
    if (inFlight !== mine || !final) return;
    page.answered = number;
    const done = performance.now();
    const ms = done - startedAt;
    page.lastUpdateMs = ms;
    // Where the time went: encoding the PNG, the chosen model's round trip (server included), painting.
    page.lastBreakdownMs = { encode: sentAt - startedAt, request: answeredAt - sentAt, render: done - answeredAt, server: body.timings_ms.total };
    page.updates += 1;
    document.body.dataset.updateMs = ms.toFixed(1);
    document.body.dataset.updates = String(page.updates);
    const after = fromCanvas ? "the stroke" : "choosing the file";
    timing.textContent = `Updated ${Math.round(ms)} ms after ${after} (model ${body.timings_ms.total.toFixed(0)} ms)`;
    announce.textContent = announcement();
  } catch (error) {
    if (error.name === "AbortError" || inFlight !== mine) return;
    controller.abort();
    showError(0, "", fromCanvas);
    if (final) page.answered = number;
  } finally {
    if (inFlight === mine) {
      inFlight = null;
      if (pendingLive) scheduleLive();
    }
  }
}

// Another model's answer, painted on its card as soon as it comes; it never throws.
async function answerOf(name, blob, filename, signal, mine) {
  try {
    const { response, body } = await post(`/predict?model=${encodeURIComponent(name)}`, blob, filename, signal);
    if (inFlight !== mine) return;
    if (response.ok) showAnswer(name, body);
    else showNoAnswer(name, "No prediction");
  } catch (error) {
    if (error.name !== "AbortError" && inFlight === mine) showNoAnswer(name, "No answer");
  }
}

function showError(status, message, fromCanvas) {
  page.errors += 1;
  let text;
  if (status === 422 && fromCanvas) text = "Draw a digit… the model needs some ink to read.";
  else if (status === 0) text = "The service did not answer. Is it still running? Try again in a moment.";
  else text = message ? message[0].toUpperCase() + message.slice(1) : `The service answered ${status}.`;
  resetResults("No prediction", "No map: the model gave no answer.");
  setStatus(text, true);
  announce.textContent = text;
  document.body.dataset.state = "error";
}

// The pad as a PNG file. NOTE: toDataURL, not toBlob: Chrome runs toBlob in an idle task, which waits
// behind the frames drawing produces (~12 ms); encoding 320x320 here takes ~1 ms.
function padPng() {
  const raw = atob(pad.toDataURL("image/png").slice("data:image/png;base64,".length));
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return new Blob([bytes], { type: "image/png" });
}

function sendCanvas(final, startedAt) {
  if (!hasInk || !page.ready) return;
  pendingLive = false;
  send(padPng(), "drawing.png", { final, startedAt });
}

// While drawing: one update at a time, at most every LIVE_INTERVAL_MS.
function scheduleLive() {
  pendingLive = true;
  if (liveTimer || inFlight) return; // the update in flight schedules the next one
  const wait = Math.max(0, lastSent + LIVE_INTERVAL_MS - performance.now());
  liveTimer = setTimeout(() => {
    liveTimer = 0;
    if (pendingLive && stroke) sendCanvas(false);
  }, wait);
}

// ---- drawing ---------------------------------------------------------------------------------------

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

// ---- files -------------------------------------------------------------------------------------------

async function useFile(file) {
  if (!file || !page.ready) return;
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

// ---- wiring ------------------------------------------------------------------------------------------

function clearAll() {
  if (inFlight) inFlight.controller.abort();
  inFlight = null;
  clearTimeout(liveTimer);
  liveTimer = 0;
  pendingLive = false;
  lastImage = null;
  resetTarget();
  clearPad();
  resetResults("Draw to start");
  setStatus("");
  announce.textContent = "Cleared.";
  document.body.dataset.state = "empty";
}

function wire() {
  onPickDigit(pickDigit);
  pad.addEventListener("pointerdown", startStroke);
  pad.addEventListener("pointermove", moveStroke);
  pad.addEventListener("pointerup", endStroke);
  pad.addEventListener("pointercancel", endStroke);
  $("clear").addEventListener("click", clearAll);
  modelSelect.addEventListener("change", () => {
    store(STORED_MODEL, modelSelect.value);
    chooseModel(modelSelect.value);
  });
  compareBox.addEventListener("change", () => {
    store(STORED_COMPARE, compareBox.checked ? "1" : "0");
    chooseModel(page.model);
  });
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
}

async function start() {
  clearPad();
  drawInput(null);
  wire();
  try {
    await loadModels();
  } catch (error) {
    // 503: the service is still loading its models; anything else is said as the service says it.
    const why = error.status === 503 ? "the service is still loading its models; reload in a moment" : error.message;
    setStatus(`The page cannot list the models (GET /models): ${why}.`, true);
    document.body.dataset.state = "error";
    return;
  }
  page.ready = true;
  document.body.dataset.state = "empty";
  document.body.dataset.ready = "true";
  if (hasInk) sendCanvas(true, performance.now()); // drawn while the models were loading
}

start();
