// "Where it looks": the chosen model's attribution of one digit over the 28x28 input it saw (POST /explain),
// painted as service/heatmap.py paints /explain.png: blue (against the digit) through white to red (for it),
// on one symmetric scale, over the input in grey. The digit is the prediction unless a bar was pressed.
// The methods come from GET /models (each model's `explanations`); nothing here names a model or a layer.

import { markTarget, percent } from "./answers.js";
import { pack } from "./layers.js";

const NAMES = { occlusion: "Occlusion", gradcam: "Grad-CAM" }; // a method the page does not know shows its own name
// ColorBrewer's RdBu ends through white, as in service/heatmap.py.
const NEGATIVE = [33, 102, 172];
const NEUTRAL = [247, 247, 247];
const POSITIVE = [178, 24, 43];
const EMPTY = "Draw a digit to see which pixels speak for the answer (red) and which against it (blue).";

const $ = (id) => document.getElementById(id);
const view = $("explain");
const canvas = $("explain-canvas");
const ctx = canvas.getContext("2d");
const switches = $("explain-methods");

// model: the chosen model's name; methods: what it lists; target: the digit asked for (null: the prediction);
// image: {blob, filename} of the latest drawing; latest: the number of the latest request (older answers lose).
const state = { model: null, methods: [], method: "occlusion", target: null, image: null, controller: null, latest: 0, announce: false };
/** What the page shows (window.mnistPage.explanation): the number of maps painted, and the last one's facts,
 * its (28, 28) attribution and input included. */
export const explanation = { painted: 0, last: null };

// ---- the controls ---------------------------------------------------------------------------------

/** One switch per method any model of GET /models lists, in a stable order. */
export function buildMethods(models) {
  const listed = new Set(models.flatMap((model) => model.explanations || []));
  const methods = [...Object.keys(NAMES).filter((m) => listed.has(m)), ...[...listed].filter((m) => !NAMES[m])];
  switches.replaceChildren(switches.querySelector("legend"), ...methods.map(methodSwitch));
}

function methodSwitch(method) {
  const label = document.createElement("label");
  label.className = "method";
  const input = document.createElement("input");
  input.type = "radio";
  input.name = "explain-method";
  input.value = method;
  input.addEventListener("change", () => input.checked && ask({ method }));
  label.append(input, ` ${NAMES[method] || method}`);
  return label;
}

/** Follows the model switch: its methods (the others disabled, with a tooltip saying why) and, comparing, a note. */
export function chooseExplainedModel(model, compare) {
  state.model = model.name;
  state.methods = model.explanations || [];
  if (!state.methods.includes(state.method) && state.methods.length) state.method = state.methods[0];
  for (const input of switches.querySelectorAll("input")) {
    const offered = state.methods.includes(input.value);
    input.disabled = !offered;
    input.checked = input.value === state.method && offered;
    input.parentElement.title = offered ? "" : `${model.name} does not offer ${NAMES[input.value] || input.value}`;
  }
  $("explain-model").textContent = ` · ${model.name}`;
  $("explain-note").textContent = compare
    ? `Comparing: this map is ${model.name}'s, the chosen model's only. Choose another model to see its map.`
    : "";
}

$("explain-reset").addEventListener("click", () => ask({ target: null }));

/** A bar of the chosen card was pressed: explain that digit, or the prediction again if it is the predicted one. */
export function pickDigit(digit, predicted) {
  ask({ target: digit === predicted ? null : digit });
}

/** Back to explaining the prediction (a new drawing). */
export function resetTarget() {
  state.target = null;
  markTarget(null);
}

// A method or target chosen: asked at once for the latest drawing (a newer request replaces an older one).
function ask(change) {
  const before = [state.method, state.target];
  Object.assign(state, change);
  if (before[0] === state.method && before[1] === state.target) return; // nothing new to ask
  if (state.target !== null) markTarget(state.target);
  state.announce = true;
  if (state.image) request(null);
}

// ---- the request ------------------------------------------------------------------------------------

/** Explains this drawing (part of one update of the page: `signal` aborts it with the update); never throws. */
export function explain(blob, filename, signal) {
  state.image = { blob, filename };
  return request(signal);
}

/** No map: the drawing is gone or the model gave no answer. */
export function clearExplanation(message = EMPTY) {
  state.latest += 1; // whatever is in flight is for a drawing no longer shown
  if (state.controller) state.controller.abort();
  state.image = null;
  delete view.dataset.busy;
  const none = state.model && !state.methods.length;
  blank("empty", none ? `${state.model} offers no explanations (GET /models lists none).` : message);
}

async function request(signal) {
  if (!state.image || !state.methods.includes(state.method) || signal?.aborted) return;
  if (state.controller) state.controller.abort();
  const controller = (state.controller = new AbortController());
  signal?.addEventListener("abort", () => controller.abort(), { once: true });
  const mine = ++state.latest;
  view.dataset.busy = "true";
  const query = new URLSearchParams({ model: state.model, method: state.method });
  if (state.target !== null) query.set("target", String(state.target));
  const form = new FormData();
  form.append("file", state.image.blob, state.image.filename);
  try {
    const response = await fetch(`/explain?${query}`, { method: "POST", body: form, signal: controller.signal });
    const body = await response.json().catch(() => ({}));
    if (mine !== state.latest || controller.signal.aborted) return; // a newer request's answer is the one to show
    if (response.ok) paint(body);
    else showProblem(body.error || `POST /explain answered ${response.status}`);
  } catch (error) {
    if (error.name !== "AbortError" && mine === state.latest) showProblem("The service did not answer.");
  } finally {
    if (mine === state.latest) delete view.dataset.busy;
    if (state.controller === controller) state.controller = null;
  }
}

function showProblem(message) {
  blank("error", `No map: ${message[0].toLowerCase()}${message.slice(1)}`);
}

// An empty map (white), no scale and no digit; `message` says why.
function blank(kind, message) {
  view.dataset.state = kind;
  const image = ctx.createImageData(28, 28);
  new Uint32Array(image.data.buffer).fill(pack(NEUTRAL));
  ctx.putImageData(image, 0, 0);
  $("explain-title").textContent = "Where it looks";
  $("explain-says").textContent = "";
  $("explain-about").textContent = message;
  $("explain-reset").hidden = true;
  for (const id of ["explain-low", "explain-high"]) $(id).textContent = "";
  view.querySelectorAll(".explained-digit").forEach((element, i) => (element.textContent = i ? "it" : "the digit"));
}

// ---- painting -----------------------------------------------------------------------------------------

const mix = (a, b, t) => a + t * (b - a);

// One pixel as service/heatmap.py's overlay: grey ink on white, the map's colour as strong as |unit| ** 0.75.
function pixel(ink, unit) {
  const towards = unit < 0 ? NEGATIVE : POSITIVE;
  const strength = Math.abs(unit) ** 0.75; // NOTE: weak evidence stays visible, zero stays the input
  const grey = 255 - 0.55 * 255 * ink;
  return pack(towards.map((end, c) => {
    const colour = mix(NEUTRAL[c], end, Math.abs(unit)) * (1 - 0.35 * ink);
    return Math.floor(Math.min(255, Math.max(0, mix(grey, colour, strength)))); // truncated, as numpy's uint8
  }));
}

const number = (v) => String(Number(v.toPrecision(3)));
const chance = (p) => (p < 0.001 ? "under 0.1%" : percent(p)); // "0%" would read as impossible

function paint(body) {
  const ink = body.input.data[0]; // (28, 28) in [0, 1]: what the model saw
  const map = body.attribution.data; // (28, 28): positive is evidence for the target
  const scale = Math.max(...map.map((row) => Math.max(...row.map(Math.abs)))) || 1;
  const image = ctx.createImageData(28, 28);
  const px = new Uint32Array(image.data.buffer);
  for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) px[y * 28 + x] = pixel(ink[y][x], map[y][x] / scale);
  ctx.putImageData(image, 0, 0);
  const { digit, target } = body;
  const why = target === digit ? `Where it looks for ${target}` : `Why not ${target}?`;
  $("explain-title").textContent = why;
  $("explain-says").textContent = target === digit
    ? `It says ${digit}, ${percent(body.confidence)} sure.`
    : `It says ${digit} (${percent(body.confidence)}); ${target} gets ${chance(body.target_probability)}.`;
  $("explain-about").textContent = about(body.method, body.parameters, target);
  $("explain-low").textContent = `−${number(scale)}`;
  $("explain-high").textContent = `+${number(scale)}`;
  for (const element of view.querySelectorAll(".explained-digit")) element.textContent = String(target);
  $("explain-reset").textContent = `Back to ${digit}, the prediction`;
  $("explain-reset").hidden = state.target === null || state.target === digit;
  markTarget(target);
  canvas.setAttribute("aria-label", `${why}: the ${body.method} map over the 28 by 28 input`);
  Object.assign(view.dataset, { state: "ready", method: body.method, target: String(target), digit: String(digit) });
  explanation.painted += 1;
  explanation.last = { model: body.model.name, method: body.method, target, digit, scale, attribution: map, input: ink };
  if (state.announce) $("announce").textContent = `${why} ${$("explain-says").textContent}`;
  state.announce = false;
}

function about(method, parameters, target) {
  if (method === "occlusion") {
    const { patch, stride, copies } = parameters;
    return `Occlusion: the input with a ${patch}×${patch} patch blanked at ${copies} places, every ${stride} px. ` +
      `Red where blanking lowers the log-probability of ${target}, blue where it raises it.`;
  }
  if (method === "gradcam") {
    return `Grad-CAM from ${parameters.layer}, the last convolutional layer: its maps weighted by how much each ` +
      `channel adds to the score of ${target}, placed back on the input and read where the ink is. ` +
      `Red adds to it, blue takes away.`;
  }
  return `${NAMES[method] || method}: red speaks for ${target}, blue against.`;
}
